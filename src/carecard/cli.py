"""The ``carecard`` command: demo, serve, worker, import, check, bench, manage.

``carecard demo`` is the one-command start on the embedded SQLite database; ``carecard serve``
runs the production server (granian) against ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEMO_PASSWORD = "carecard-demo"  # noqa: S105 — printed for the demo chain's logins
# checkout.presets.PRESETS keys (listed here: argparse runs before Django is set up); the first
# is the demo's default.
DEMO_PRESETS = ["wangqu", "four_tier", "rebate_ladder"]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carecard.settings")
    import django

    django.setup()


def _ensure_var_and_key(*, announce: bool) -> None:
    from django.conf import settings

    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    if settings.CARECARD_FIELD_KEYS:
        return
    key_file: Path = settings.CARECARD_FIELD_KEY_FILE
    if not key_file.exists():
        from carecard.core.crypto import generate_key

        key_file.write_text(generate_key() + "\n")
        key_file.chmod(0o600)
        if announce:
            print(
                f"已生成字段加密密钥 (created the field-encryption key): {key_file}\n"
                "  生产环境请改用环境变量 CARECARD_FIELD_KEYS，并妥善备份。"
            )


def cmd_demo(args: argparse.Namespace) -> int:
    if args.fresh:
        var = Path(os.environ.get("CARECARD_VAR_DIR", Path.cwd() / "var"))
        for name in ("carecard.sqlite3", "carecard.sqlite3-wal", "carecard.sqlite3-shm"):
            (var / name).unlink(missing_ok=True)
    _setup()
    _ensure_var_and_key(announce=True)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from carecard.demo.generator import demo_exists, generate_demo, logins

    if not demo_exists():
        print(
            f"正在生成演示连锁 (generating the demo chain): {args.members} 位会员, "
            f"seed={args.seed} …",
            flush=True,
        )
        import datetime as dt

        from django.utils import timezone

        # The chain's history ends yesterday, so this month's and today's figures are live;
        # --today pins it for a reproducible chain.
        today = dt.date.fromisoformat(args.today) if args.today else timezone.localdate()
        stats = generate_demo(
            members=args.members,
            seed=args.seed,
            password=DEMO_PASSWORD,
            today=today - dt.timedelta(days=1),
            preset=args.preset,
        )
        print("  " + ", ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
    else:
        print("使用已有演示数据 (reusing the demo data; --fresh starts over).", flush=True)
    print("\n演示账号 (demo logins), 密码 password: " + DEMO_PASSWORD)
    for role, username, store in logins():
        print(f"  {role:<12} {username:<14} {store}")
    if args.no_serve:
        return 0
    print(
        f"\n控制台 (console): http://127.0.0.1:{args.port}/   "
        f"API: http://127.0.0.1:{args.port}/api/v1/docs\n",
        flush=True,
    )
    call_command(
        "runserver",
        f"127.0.0.1:{args.port}",
        use_reloader=False,
        insecure_serving=True,
        skip_checks=True,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _setup()
    from django.conf import settings
    from django.core.management import call_command

    if settings.SECRET_KEY.startswith("carecard-insecure"):
        print(
            "CARECARD_SECRET_KEY is not set; refusing to serve in production mode.", file=sys.stderr
        )
        return 2
    _ensure_var_and_key(announce=False)
    call_command("migrate", verbosity=1, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    argv = [
        "granian",
        "--interface",
        "wsgi",
        "carecard.wsgi:application",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--static-path-route",
        "/static",
        "--static-path-mount",
        str(settings.STATIC_ROOT),
    ]
    os.execvp("granian", argv)  # noqa: S606
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    _setup()
    from django.core.management import call_command

    call_command("db_worker", *args.rest)
    return 0


def cmd_manage(args: argparse.Namespace) -> int:
    _setup()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["carecard", *args.rest])
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    _setup()
    _ensure_var_and_key(announce=False)
    from carecard.core.importing import run_import_cli

    return run_import_cli(
        kind=args.kind,
        path=Path(args.path),
        bulk=args.bulk,
        report=Path(args.report) if args.report else None,
    )


def cmd_check(args: argparse.Namespace) -> int:
    """Django's system checks, then the ledgers (P-2): cached balance = sum of entries = open
    lots, for every member. Exit 1 when anything disagrees."""
    _setup()
    from django.core.management import call_command

    from carecard.loyalty.selectors import verify_points
    from carecard.wallet.selectors import verify_wallets

    call_command("check")
    bad = verify_points()
    for m in bad[:50]:
        print(
            f"积分账不平 member {m.member_id}: 余额 {m.cached} / 流水合计 {m.entries} / "
            f"批次合计 {m.lots} − 待抵扣 {m.debt}",
            file=sys.stderr,
        )
    print(f"积分账：{'全部一致' if not bad else f'{len(bad)} 个会员不一致'}")
    wallets = verify_wallets()
    for w in wallets[:50]:
        print(f"储值账不平 member {w.member_id}: {w}", file=sys.stderr)
    print(f"储值账：{'全部一致' if not wallets else f'{len(wallets)} 个会员不一致'}")
    return 1 if bad or wallets else 0


def cmd_presets(args: argparse.Namespace) -> int:
    _setup()
    from carecard.checkout.presets import PRESETS, preset_load

    if args.action == "list" or not args.name:
        for key, preset in PRESETS.items():
            print(f"{key:15} {preset.name}：{preset.summary}")
        return 0
    if args.name not in PRESETS:
        print(f"未知的预置规则：{args.name}（可选：{', '.join(PRESETS)}）", file=sys.stderr)
        return 2
    preset = preset_load(args.name)
    print(f"已载入「{preset.name}」的会员规则")
    return 0


def cmd_daily(args: argparse.Namespace) -> int:
    """Enqueue the daily jobs (points expiry, tier review); cron runs this once a day."""
    _setup()
    from django.utils import timezone

    from carecard.checkout.tasks import expire_points, review_tiers

    today = args.today or timezone.localdate().isoformat()
    for job in (expire_points, review_tiers):
        result = job.enqueue(today)
        print(f"{job.name}({today}) → {result.id}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    sys.argv = ["bench", *args.rest]
    runpy.run_path(str(Path.cwd() / "bench" / "run.py"), run_name="__main__")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        # Every option after "bench" is bench/run.py's (argparse's REMAINDER would refuse a
        # leading "--members").
        return cmd_bench(argparse.Namespace(rest=argv[1:]))
    parser = argparse.ArgumentParser(prog="carecard", description="CareCard 药店会员管理系统")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="演示：SQLite + 演示数据 + 控制台")
    demo.add_argument("--members", type=int, default=20000, help="会员数 (default 20000)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--today", help="固定演示数据的当天日期 YYYY-MM-DD（默认今天）")
    demo.add_argument(
        "--preset",
        choices=DEMO_PRESETS,
        default=DEMO_PRESETS[0],
        help="演示连锁采用的会员规则 (checkout.presets; default wangqu)",
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--fresh", action="store_true", help="删除已有演示数据库后重建")
    demo.add_argument("--no-serve", action="store_true", help="只生成数据，不启动服务")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="生产服务器 (granian) against DATABASE_URL")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="后台任务 worker (django-tasks database backend)")
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    worker.set_defaults(func=cmd_worker)

    imp = sub.add_parser("import", help="导入 CSV/XLSX: stores, staff, products, members")
    imp.add_argument("kind", choices=["stores", "staff", "products", "members"])
    imp.add_argument("path")
    imp.add_argument("--bulk", action="store_true", help="PostgreSQL COPY 批量通道")
    imp.add_argument("--report", help="写出拒绝行报告 (CSV)")
    imp.set_defaults(func=cmd_import)

    check = sub.add_parser("check", help="系统检查 + 积分账核对")
    check.set_defaults(func=cmd_check)

    presets = sub.add_parser("presets", help="预置会员规则: list | load NAME")
    presets.add_argument("action", choices=["list", "load"])
    presets.add_argument("name", nargs="?")
    presets.set_defaults(func=cmd_presets)

    daily = sub.add_parser("daily", help="排入每日任务：积分过期、等级评定")
    daily.add_argument("--today", help="YYYY-MM-DD (default today)")
    daily.set_defaults(func=cmd_daily)

    bench = sub.add_parser("bench", help="性能基准 (bench/run.py)")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)

    manage = sub.add_parser("manage", help="Django manage.py 命令")
    manage.add_argument("rest", nargs=argparse.REMAINDER)
    manage.set_defaults(func=cmd_manage)

    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

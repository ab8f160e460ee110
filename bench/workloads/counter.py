"""The counter (issue #3): ``sale_quote`` and ``sale_commit`` as the POS API calls them, from
concurrent clients, on the lookup database's members with a year of sales history.

Setting (issue #3's acceptance): 1 M members and 10 M sale lines (``bench/history.py``), a
40-SKU catalogue and the 王曲同心 rules. Each client is its own process with its own Django
database connection, pricing or committing 1–4 line baskets paid in cash for members drawn from
the history's receipts (so frequent buyers come more often, as at a real till); the clients'
members are disjoint, so two tills never serve the same member at once — the contention left
is the database's own (indexes, WAL, SQLite's single writer).

Per client count (``--clients 1,2,4,8``), each workload runs closed-loop for ``--duration``
seconds after a warm-up: every client sends its next request as soon as the last one returns.
Throughput is all clients' operations over the wall-clock window; latency percentiles are over
every operation. Next to each, the baseline runs with the same clients in the same run:

- quote baseline: the quote's reads as hand-written SQL — the member with tier, account,
  aggregates and available points in one statement, then the basket's products;
- commit baseline: the commit's transaction as hand-written SQL on the raw DB-API connection,
  one statement per step like the app's — account lock, sale, its lines and discounts (the same
  rows as the app writes for the same basket, each a multi-row insert), tender, points entry and
  lot, account, the member's aggregates (read and written back), and last the idempotency record
  with its stored response — between ``BEGIN`` (``BEGIN IMMEDIATE`` on SQLite) and ``COMMIT``.

Then the **paced** run: commits offered at a fixed rate (``--paced-rate``, 200/s) on an open-loop
schedule — request *i* is due at start + *i* / rate whatever happened before — served by
``--paced-clients`` processes taking the next due request as they come free. Latency counts from
the scheduled time, so a stall that delays later requests shows in their latency instead of
being hidden by the clients slowing down (coordinated omission).

SQLite runs with the application's own connection settings (``carecard.settings``: WAL,
``synchronous=FULL``, ``busy_timeout`` 20 s, ``BEGIN IMMEDIATE`` transactions); every client
reads them back from its connection and the results record them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import multiprocessing as mp
import os
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.workloads.common import Result, SqlCounter, Stats, percentile

SKUS = 40
POOL = 20_000  # receipts the members are drawn from
BASKETS = 400  # distinct baskets (priced once with the app's own quote)
WARMUP_OPS = 20  # per client, before the timed window


# ----------------------------------------------------------------------------- setup
def ensure_catalogue(seed: int) -> None:
    """The 40-SKU catalogue and the 王曲同心 rules, once per database."""
    from carecard.catalog.models import Category, Product
    from carecard.checkout.models import CheckoutSettings
    from carecard.checkout.presets import preset_load

    if Product.objects.filter(sku="BENCH-0").exists():
        return
    otc, _ = Category.objects.get_or_create(
        code="BENCH-OTC", defaults={"name": "乙类OTC", "item_class": "otc_b"}
    )
    rng = random.Random(seed)
    Product.objects.bulk_create(
        Product(
            sku=f"BENCH-{i}",
            name=f"基准商品{i}",
            category=otc,
            item_class="otc_b",
            shelf_price=Decimal(rng.randrange(500, 20000)) / 100,
            is_special_price=i % 10 == 0,
        )
        for i in range(SKUS)
    )
    preset_load("wangqu")
    CheckoutSettings.objects.update(points_per_yuan=100)


def member_pool(seed: int, size: int = POOL) -> tuple[list[int], str]:
    """Active members, drawn from random receipts of the history (weighted by visits); without
    a history, uniformly from all members."""
    from django.db import connection

    rng = random.Random(seed + 1)
    with connection.cursor() as cur:
        cur.execute("SELECT max(id) FROM checkout_sale")
        top_sale = cur.fetchone()[0] or 0
        if top_sale >= size:
            ids = sorted({rng.randrange(1, top_sale + 1) for _ in range(size)})
            how = "members of random history receipts (visit-weighted)"
            sql = (
                "SELECT s.member_id FROM checkout_sale s JOIN members_member m"
                " ON m.id = s.member_id WHERE m.status = 'active' AND s.id IN ({})"
            )
        else:
            cur.execute("SELECT max(id) FROM members_member")
            top = cur.fetchone()[0] or 0
            ids = sorted({rng.randrange(1, top + 1) for _ in range(size)})
            how = "random members (no sales history)"
            sql = "SELECT id FROM members_member WHERE status = 'active' AND id IN ({})"
        members: list[int] = []
        for i in range(0, len(ids), 5000):
            chunk = ids[i : i + 5000]
            cur.execute(sql.format(", ".join(["%s"] * len(chunk))), chunk)
            members += [r[0] for r in cur.fetchall()]
    distinct = sorted(set(members))
    rng.shuffle(distinct)
    return distinct, how


def _baskets(seed: int, store_id: int, member_id: int, n: int = BASKETS) -> list[dict[str, Any]]:
    """Baskets priced by ``sale_quote`` (what the POS gets before it commits): the lines, the
    net to pay, and the rows the commit baseline writes for them. Under the 王曲同心 rules
    every active member pays the same for a basket on a given day."""
    from carecard.catalog.models import Product
    from carecard.checkout import services
    from carecard.checkout.services import LineIn

    rng = random.Random(seed + 2)
    product_ids = dict(Product.objects.filter(sku__startswith="BENCH-").values_list("sku", "pk"))
    out = []
    for _ in range(n):
        skus = rng.sample(range(SKUS), rng.randint(1, 4))
        lines = [LineIn(f"BENCH-{s}", rng.randint(1, 3)) for s in skus]
        quote = services.sale_quote(store_id=store_id, member_id=member_id, lines=lines)
        priced, earning = quote.basket, quote.earning
        rows = []
        for pl in priced.lines:
            le = earning.lines[pl.index]
            rows.append(
                {
                    "product_id": product_ids[pl.item.sku],
                    "sku": pl.item.sku,
                    "name": pl.item.name,
                    "quantity": pl.quantity,
                    "unit_price": str(pl.item.shelf_price),
                    "original": str(pl.original),
                    "discount": str(pl.discount_total),
                    "net": str(pl.net),
                    "points": le.points,
                    "explanation": json.dumps({"text": le.text, "tenders": {}}),
                    "discounts": [
                        (d.kind, str(d.rule_id or ""), str(d.amount), d.reason, d.funded_by)
                        for d in pl.discounts
                        if d.amount > 0
                    ],
                }
            )
        response = {
            "sale_id": 0,
            "receipt_no": "BENCH00-20261124120000-ABCDEF",
            "kind": "sale",
            "lines": [
                {k: v for k, v in r.items() if k not in ("explanation", "product_id")} for r in rows
            ],
            "original_total": str(priced.original),
            "discount_total": str(priced.discount_total),
            "net_total": str(priced.net),
            "points_earned": earning.total,
            "points_text": earning.text,
        }
        out.append(
            {
                "lines": lines,
                "net": priced.net,
                "original": str(priced.original),
                "discount_total": str(priced.discount_total),
                "earned": earning.total,
                "earning_text": earning.text,
                "entry_explanation": json.dumps(
                    {"text": earning.text, "lines": [ln.text for ln in earning.lines]}
                ),
                "rule_label": earning.rule_label,
                "rows": rows,
                "response": json.dumps(response),
            }
        )
    return out


# ----------------------------------------------------------------------------- operations
class _Ops:
    """What one client process sends: the app's quote and commit, and their baselines."""

    def __init__(self, store_id: int) -> None:
        from django.db import connection

        self.store_id = store_id
        self.connection = connection
        self.pg = connection.vendor == "postgresql"
        self.ph = "%s" if self.pg else "?"

    def quote(self, item: tuple[int, dict[str, Any]]) -> None:
        from carecard.checkout import services

        services.sale_quote(store_id=self.store_id, member_id=item[0], lines=item[1]["lines"])

    def commit(self, item: tuple[int, dict[str, Any]]) -> None:
        from carecard.checkout import services
        from carecard.checkout.services import TenderIn

        member_id, basket = item
        services.sale_commit(
            scope="bench",
            idempotency_key=uuid.uuid4().hex,
            body={"m": member_id, "lines": [[ln.sku, ln.quantity] for ln in basket["lines"]]},
            store_id=self.store_id,
            member_id=member_id,
            lines=basket["lines"],
            tenders=[TenderIn(kind="cash", amount=basket["net"])],
        )

    # -- baselines on the raw DB-API connection ------------------------------------------
    def raw(self) -> Any:
        self.connection.ensure_connection()
        raw = self.connection.connection
        if self.pg:
            raw.autocommit = True
        return raw.cursor()

    def base_quote(self, cur: Any, item: tuple[int, dict[str, Any]]) -> int:
        p = self.ph
        now = dt.datetime.now(dt.UTC)
        today = now.astimezone(_tz()).date()
        at = now if self.pg else now.replace(tzinfo=None).isoformat(" ")
        cur.execute(
            "SELECT m.id, m.status, m.birthday, m.birthday_is_lunar, m.lunar_birthday,"
            " m.home_store_id, t.tier_id, a.balance, a.debt, a.lifetime_earned, s.visits,"
            " s.spend, s.visits_12m, s.spend_12m, (SELECT COALESCE(SUM(l.remaining), 0)"
            " FROM loyalty_pointslot l WHERE l.member_id = m.id AND l.remaining > 0"
            f" AND (l.expires_on IS NULL OR l.expires_on >= {p}) AND l.available_at <= {p})"
            " FROM members_member m LEFT JOIN loyalty_membertier t ON t.member_id = m.id"
            " LEFT JOIN loyalty_pointsaccount a ON a.member_id = m.id"
            f" LEFT JOIN checkout_memberstats s ON s.member_id = m.id WHERE m.id = {p}",
            [today if self.pg else today.isoformat(), at, item[0]],
        )
        cur.fetchall()
        skus = [ln.sku for ln in item[1]["lines"]]
        cur.execute(
            "SELECT id, sku, name, category_id, item_class, shelf_price, member_price,"
            " is_special_price, is_limited, is_promotional, is_insurance_listed,"
            f" contains_ephedrine FROM catalog_product WHERE sku IN ({', '.join([p] * len(skus))})",
            skus,
        )
        cur.fetchall()
        return 2

    def base_commit(self, cur: Any, item: tuple[int, dict[str, Any]]) -> int:
        """The commit's writes as SQL; returns the statements sent."""
        p = self.ph
        member_id, b = item
        key = uuid.uuid4().hex
        now = dt.datetime.now(dt.UTC)
        local = now.astimezone(_tz())
        at = now if self.pg else now.replace(tzinfo=None).isoformat(" ")
        day = local.date() if self.pg else local.date().isoformat()
        month = f"{local:%Y-%m}"
        net = b["net"]
        earned = b["earned"]
        n = 0

        def execute(sql: str, params: Any = ()) -> None:
            nonlocal n
            n += 1  # statements, like the app's count (without BEGIN and COMMIT)
            cur.execute(sql, params)

        cur.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")
        try:
            execute(
                "SELECT member_id, balance, debt, lifetime_earned, lifetime_spent,"
                f" lifetime_expired FROM loyalty_pointsaccount WHERE member_id = {p}"
                + (" FOR UPDATE" if self.pg else ""),
                [member_id],
            )
            account = cur.fetchone()
            balance = (account[1] if account else 0) + earned
            execute(
                "INSERT INTO checkout_sale (receipt_no, kind, member_id, store_id, at,"
                " business_date, recorded_at, offline, original_total, discount_total,"
                " net_total, points_earned, points_spent, points_balance, recovered_amount,"
                f" explanation) VALUES ({p}, 'sale', {p}, {p}, {p}, {p}, {p}, {_false(self.pg)},"
                f" {p}, {p}, {p}, {p}, 0, {p}, 0, {p}) RETURNING id",
                [
                    f"BASE-{key[:24]}",
                    member_id,
                    self.store_id,
                    at,
                    day,
                    at,
                    b["original"],
                    b["discount_total"],
                    str(net),
                    earned,
                    balance,
                    json.dumps({"text": b["earning_text"]}),
                ],
            )
            sale_id = cur.fetchone()[0]
            rows = b["rows"]
            values = ", ".join(
                f"({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, 0, {p})"
                for _ in rows
            )
            params: list[Any] = []
            for i, r in enumerate(rows):
                params += [
                    sale_id,
                    member_id,
                    i + 1,
                    r["product_id"],
                    r["sku"],
                    r["name"],
                    r["quantity"],
                    r["unit_price"],
                    r["original"],
                    r["discount"],
                    r["net"],
                    r["points"],
                    r["explanation"],
                ]
            execute(
                "INSERT INTO checkout_saleline (sale_id, member_id, line_no, product_id, sku,"
                " name, quantity, unit_price, original, discount, net, points,"
                f" returned_quantity, explanation) VALUES {values} RETURNING id",
                params,
            )
            line_ids = sorted(r[0] for r in cur.fetchall())
            disc = [
                [line_id, member_id, kind, ref, "", amount, reason, funded]
                for line_id, r in zip(line_ids, rows, strict=True)
                for kind, ref, amount, reason, funded in r["discounts"]
            ]
            if disc:
                execute(
                    "INSERT INTO checkout_salediscount (line_id, member_id, kind, rule_ref,"
                    " coupon_code, amount, reason, funded_by, points_funded) VALUES "
                    + ", ".join(
                        f"({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {_false(self.pg)})" for _ in disc
                    ),
                    [v for row in disc for v in row],
                )
            execute(
                "INSERT INTO checkout_saletender (sale_id, member_id, kind, amount, points,"
                f" reference) VALUES ({p}, {p}, 'cash', {p}, 0, '')",
                [sale_id, member_id, str(net)],
            )
            if earned:
                execute(
                    "INSERT INTO loyalty_pointsentry (member_id, kind, points, balance_after, at,"
                    f" store_id, reference, reason, explanation) VALUES ({p}, 'earn', {p}, {p},"
                    f" {p}, {p}, {p}, {p}, {p}) RETURNING id",
                    [
                        member_id,
                        earned,
                        balance,
                        at,
                        self.store_id,
                        f"sale:{sale_id}",
                        b["rule_label"],
                        b["entry_explanation"],
                    ],
                )
                entry_id = cur.fetchone()[0]
                execute(
                    "INSERT INTO loyalty_pointslot (member_id, entry_id, earned_at, available_at,"
                    f" expires_on, original, remaining) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
                    [
                        member_id,
                        entry_id,
                        at,
                        at,
                        f"{local.year}-12-31",
                        earned,
                        earned,
                    ],
                )
                execute(
                    f"UPDATE loyalty_pointsaccount SET balance = {p}, lifetime_earned ="
                    f" lifetime_earned + {p}, updated_at = {p} WHERE member_id = {p}",
                    [balance, earned, at, member_id],
                )
            execute(
                f"SELECT visits, spend, months FROM checkout_memberstats WHERE member_id = {p}"
                + (" FOR UPDATE" if self.pg else ""),
                [member_id],
            )
            stats = cur.fetchone()
            if stats is not None:
                months = stats[2] if isinstance(stats[2], dict) else json.loads(stats[2])
                v, s = months.get(month, [0, "0.00"])
                months[month] = [v + 1, str(Decimal(s) + net)]
                execute(
                    "UPDATE checkout_memberstats SET visits = visits + 1, spend = spend + "
                    f"{p}, visits_12m = visits_12m + 1, spend_12m = spend_12m + {p},"
                    f" last_purchase_at = {p}, last_store_id = {p}, months = {p}"
                    f" WHERE member_id = {p}",
                    [str(net), str(net), at, self.store_id, json.dumps(months), member_id],
                )
            execute(
                "INSERT INTO core_idempotencyrecord (scope, key, operation, request_hash,"
                f" status_code, response, created_at) VALUES ('bench-base', {p}, 'sale', {p},"
                f" 201, {p}, {p}) ON CONFLICT (scope, key) DO NOTHING RETURNING id",
                [
                    key,
                    key + key,
                    b["response"].replace('"sale_id": 0', f'"sale_id": {sale_id}'),
                    at,
                ],
            )
            if cur.fetchone() is None:
                raise RuntimeError("idempotency key taken")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return n


def _false(pg: bool) -> str:
    return "false" if pg else "0"


_TZ: Any = None


def _tz() -> Any:
    global _TZ
    if _TZ is None:
        from django.utils import timezone

        _TZ = timezone.get_current_timezone()
    return _TZ


# ----------------------------------------------------------------------------- clients
def _settings_seen() -> dict[str, Any]:
    """The connection settings a client actually runs with."""
    from django.db import connection

    out: dict[str, Any] = {}
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            for pragma in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
                cur.execute(f"PRAGMA {pragma}")
                out[pragma] = cur.fetchone()[0]
            out["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                out["synchronous"], out["synchronous"]
            )
            out["transaction_mode"] = connection.settings_dict["OPTIONS"].get("transaction_mode")
        else:
            for setting in ("synchronous_commit", "transaction_isolation", "fsync"):
                cur.execute(f"SHOW {setting}")
                out[setting] = cur.fetchone()[0]
    return out


def _client(
    kind: str,
    store_id: int,
    items: list[tuple[int, dict[str, Any]]],
    seed: int,
    barrier: Any,
    start_at: Any,
    duration_ns: int,
    paced: tuple[Any, Any, int, int] | None,
    pipe: Any,
) -> None:
    """One client process: warm up, wait for the others, run, send back the latencies."""
    try:
        from django.db import connection

        ops = _Ops(store_id)
        rng = random.Random(seed)
        counter = SqlCounter()
        if kind in ("quote", "commit"):
            fn: Callable[[Any], Any] = getattr(ops, kind)
            statements = None
        else:
            cur = ops.raw()
            method = getattr(ops, kind)

            def fn(item: Any) -> Any:
                counter.count += method(cur, item)

            statements = counter
        seen = _settings_seen()
        backend = _backend_pid()
        nice = os.getpriority(os.PRIO_PROCESS, 0)
        if backend is not None and nice < 0:
            # --nice: the client inherited it; its server process gets it too.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, backend, nice)
        for _ in range(WARMUP_OPS):
            fn(rng.choice(items))
        gc.collect()
        lat: list[int] = []
        service: list[int] = []
        errors = 0
        first_error = ""
        clock = time.monotonic_ns
        with connection.execute_wrapper(counter) if statements is None else _nothing():
            counter.count = 0
            barrier.wait()
            while (start := start_at.value) == 0:
                time.sleep(0.0005)
            while clock() < start:
                time.sleep(0.0005)
            cpu0, db0 = time.process_time(), _proc_cpu(backend)
            if paced is None:
                deadline = start + duration_ns
                while True:
                    t0 = clock()
                    if t0 >= deadline:
                        break
                    try:
                        fn(rng.choice(items))
                    except Exception as exc:  # noqa: BLE001 — counted and reported
                        errors += 1
                        first_error = first_error or f"{type(exc).__name__}: {exc}"
                    lat.append(clock() - t0)
            else:
                next_index, lock, total, period_ns = paced
                while True:
                    with lock:
                        i = next_index.value
                        next_index.value = i + 1
                    if i >= total:
                        break
                    due = start + i * period_ns
                    wait = due - clock()
                    if wait > 0:
                        time.sleep(wait / 1e9)
                    t0 = clock()
                    try:
                        fn(rng.choice(items))
                    except Exception as exc:  # noqa: BLE001
                        errors += 1
                        first_error = first_error or f"{type(exc).__name__}: {exc}"
                    end = clock()
                    lat.append(end - due)
                    service.append(end - t0)
            end_at = clock()
            cpu, db = time.process_time() - cpu0, _proc_cpu(backend) - db0
        pipe.send(
            {
                "lat": lat,
                "service": service,
                "sql": counter.count,
                "errors": errors,
                "first_error": first_error,
                "start": start,
                "end": end_at,
                "settings": seen,
                "cpu_s": cpu,
                "db_cpu_s": db,
            }
        )
    except BaseException:
        barrier.abort()  # the others, and the parent, stop waiting
        pipe.send({"crash": traceback.format_exc()})
    finally:
        pipe.close()


def _backend_pid() -> int | None:
    """The PostgreSQL server process serving this connection (on this machine)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_a: Any) -> None:
        return None


def _run_clients(
    kind: str,
    clients: int,
    *,
    store_id: int,
    items: list[tuple[int, dict[str, Any]]],
    seed: int,
    duration: float,
    paced_rate: float = 0.0,
) -> dict[str, Any]:
    """Run ``clients`` processes of ``kind``; their results merged."""
    from django.db import connections

    connections.close_all()  # each client opens its own connection after the fork
    load0 = os.getloadavg()[0]
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    start_at = ctx.Value("q", 0)
    paced = None
    if paced_rate:
        total = int(paced_rate * duration)
        paced = (ctx.Value("q", 0, lock=False), ctx.Lock(), total, int(1e9 / paced_rate))
    procs, pipes = [], []
    for k in range(clients):
        mine = items[k::clients]
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_client,
            args=(
                kind,
                store_id,
                mine,
                seed * 1000 + clients * 10 + k,
                barrier,
                start_at,
                int(duration * 1e9),
                paced,
                child,
            ),
        )
        proc.start()
        child.close()
        procs.append(proc)
        pipes.append(parent)
    try:
        barrier.wait(timeout=600)
        start_at.value = time.monotonic_ns() + 50_000_000
    except threading.BrokenBarrierError:
        pass  # a client failed: its report follows
    parts = [p.recv() for p in pipes]
    for proc in procs:
        proc.join()
    crashed = sorted(
        (p["crash"] for p in parts if "crash" in p), key=lambda t: "BrokenBarrierError" in t
    )
    if crashed:
        raise RuntimeError(f"{kind} client failed:\n{crashed[0]}")
    lat = sorted(x for p in parts for x in p["lat"])
    start = min(p["start"] for p in parts)
    end = max(p["end"] for p in parts)
    seconds = (end - start) / 1e9
    n = len(lat)
    stats = Stats(
        ops=n,
        seconds=round(seconds, 3),
        throughput=round(n / seconds, 1) if seconds else 0.0,
        p50_ms=round(percentile(lat, 50), 3),
        p95_ms=round(percentile(lat, 95), 3),
        p99_ms=round(percentile(lat, 99), 3),
        max_ms=round(lat[-1] / 1e6, 3) if lat else 0.0,
        sql_per_op=round(sum(p["sql"] for p in parts) / n, 2) if n else None,
    )
    service = sorted(x for p in parts for x in p["service"])
    cpu = sum(p["cpu_s"] for p in parts)
    db_cpu = sum(p["db_cpu_s"] for p in parts)
    settings = [p["settings"] for p in parts]
    return {
        "stats": stats,
        "errors": sum(p["errors"] for p in parts),
        "first_error": next((p["first_error"] for p in parts if p["first_error"]), ""),
        "settings": settings[0] if all(s == settings[0] for s in settings) else settings,
        "service_p50_ms": round(percentile(service, 50), 3) if service else None,
        "service_p99_ms": round(percentile(service, 99), 3) if service else None,
        # Where an operation's time goes: the clients' own CPU (Python; SQLite's work too), the
        # PostgreSQL backends' CPU, and the machine's load (other jobs share the CPUs).
        "client_cpu_ms_per_op": round(cpu * 1000 / n, 3) if n else None,
        "db_cpu_ms_per_op": round(db_cpu * 1000 / n, 3) if n and db_cpu else None,
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


# ----------------------------------------------------------------------------- run
def _cpu(cell: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    out = {
        "cpu_ms_per_op": cell["client_cpu_ms_per_op"],
        "db_cpu_ms_per_op": cell["db_cpu_ms_per_op"],
        "load": cell["load"],
    }
    if base is not None:
        out["baseline_cpu_ms_per_op"] = base["client_cpu_ms_per_op"]
        out["baseline_db_cpu_ms_per_op"] = base["db_cpu_ms_per_op"]
    return out


def run(
    *,
    clients: list[int],
    duration: float,
    paced_rate: float,
    paced_seconds: float,
    paced_clients: int,
    seed: int,
    log: Any,
) -> tuple[list[Result], dict[str, Any]]:
    from django.db import connection

    from bench import history
    from carecard.chain.models import Store

    ensure_catalogue(seed)
    pg = connection.vendor == "postgresql"
    store_id = Store.objects.order_by("pk").values_list("pk", flat=True).first()
    pool, how = member_pool(seed)
    baskets = _baskets(seed, store_id, pool[0])
    rng = random.Random(seed + 3)
    items = [(m, rng.choice(baskets)) for m in pool]
    before = history.verify(sample=500, seed=seed, app_ledger=False)
    log(f"  history check before: {before}")
    info: dict[str, Any] = {
        "members_pool": len(pool),
        "members_from": how,
        "baskets": len(baskets),
        "duration_s": duration,
        "cpu_count": os.cpu_count(),
        "check_before": before,
    }
    results: list[Result] = []
    cells: dict[tuple[str, int], dict[str, Any]] = {}

    def cell(kind: str, n: int, **kw: Any) -> dict[str, Any]:
        out = _run_clients(
            kind, n, store_id=store_id, items=items, seed=seed, duration=duration, **kw
        )
        s = out["stats"]
        log(
            f"  {kind:12s} ×{n}: {s.throughput:8,.0f}/s  p50 {s.p50_ms:7.2f}  p95 {s.p95_ms:7.2f}"
            f"  p99 {s.p99_ms:7.2f} ms  {s.sql_per_op} SQL/op  CPU/op client "
            f"{out['client_cpu_ms_per_op']} db {out['db_cpu_ms_per_op']} ms  load {out['load']}"
            + (f"  {out['errors']} errors ({out['first_error']})" if out["errors"] else "")
        )
        return out

    for kind in ("quote", "commit"):
        # Untimed, so the first timed row does not pay alone for reading the pool's members
        # and the tables' hot pages into memory (quote ×1 ran at a fifth of quote ×2 without
        # it); the app and its baseline each get a pass.
        for warm in (kind, f"base_{kind}"):
            out = _run_clients(
                warm, 2, store_id=store_id, items=items, seed=seed + 7, duration=min(duration, 10)
            )
            log(f"  warm-up {warm} ×2 (not counted): {out['stats'].throughput:,.0f}/s")
        for n in clients:
            cells[(kind, n)] = cell(kind, n)
            cells[(f"base_{kind}", n)] = cell(f"base_{kind}", n)
    info["connection_settings"] = cells[("commit", clients[0])]["settings"]
    for n in clients:
        q, qb = cells[("quote", n)], cells[("base_quote", n)]
        c, cb = cells[("commit", n)], cells[("base_commit", n)]
        qs, cs = q["stats"], c["stats"]
        notes = [
            f"{x} errors in {k} ×{n}: {cells[(k, n)]['first_error']}"
            for k in ("quote", "base_quote", "commit", "base_commit")
            if (x := cells[(k, n)]["errors"])
        ]
        results.append(
            Result(
                workload=f"checkout_quote ×{n}",
                description=f"price a 1–4 line basket (王曲同心 rules), {n} concurrent clients",
                measured=qs,
                baseline=qb["stats"],
                baseline_description="the quote's reads as hand-written SQL (2 statements)",
                target="≥ 1,000/s, p99 ≤ 20 ms" if pg else "",
                target_met=(qs.throughput >= 1000 and qs.p99_ms <= 20) if pg else None,
                extra={"clients": n, **_cpu(q, qb)},
            )
        )
        ratio = cs.throughput / cb["stats"].throughput if cb["stats"].throughput else 0.0
        results.append(
            Result(
                workload=f"checkout_commit ×{n}",
                description=f"commit that basket paid in cash, {n} concurrent clients",
                measured=cs,
                baseline=cb["stats"],
                baseline_description="the same writes as hand-written SQL in one transaction",
                target="≥ 400/s and ≥ 0.4 × baseline" if pg else "≥ 200/s",
                target_met=(cs.throughput >= 400 and ratio >= 0.4) if pg else cs.throughput >= 200,
                notes=notes,
                extra={"clients": n, "commit_vs_baseline": round(ratio, 3), **_cpu(c, cb)},
            )
        )
    paced_n = paced_clients or max(clients)
    paced = _run_clients(
        "commit",
        paced_n,
        store_id=store_id,
        items=items,
        seed=seed + 99,
        duration=paced_seconds,
        paced_rate=paced_rate,
    )
    ps = paced["stats"]
    offered = int(paced_rate * paced_seconds)
    kept_up = ps.ops == offered and ps.throughput >= 0.98 * paced_rate
    log(
        f"  paced commit {paced_rate:.0f}/s ×{paced_n}: achieved {ps.throughput:,.0f}/s, "
        f"p50 {ps.p50_ms:.2f} p99 {ps.p99_ms:.2f} max {ps.max_ms:.1f} ms from schedule "
        f"(service p99 {paced['service_p99_ms']} ms)"
    )
    results.append(
        Result(
            workload=f"checkout_commit paced {paced_rate:.0f}/s",
            description=f"commits offered at {paced_rate:.0f}/s open-loop, {paced_n} clients; "
            "latency from the scheduled start",
            measured=ps,
            baseline=None,
            baseline_description="",
            target=f"p99 ≤ 50 ms at {paced_rate:.0f}/s" if pg else "",
            target_met=(kept_up and ps.p99_ms <= 50) if pg else None,
            notes=[f"{paced['errors']} errors: {paced['first_error']}"] if paced["errors"] else [],
            extra={
                "clients": paced_n,
                "offered": offered,
                "service_p50_ms": paced["service_p50_ms"],
                "service_p99_ms": paced["service_p99_ms"],
                **_cpu(paced, None),
            },
        )
    )
    touched = pool[:500]
    after = history.verify(ids=touched, app_ledger=False)
    log(f"  check after, on members the run sold to: {after}")
    info["check_after"] = after
    return results, info

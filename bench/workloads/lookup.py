"""Counter lookups (M-5): ``lookup_members`` exactly as the API and the console call it.

Each workload draws its keys deterministically from the generated members, warms up on other keys
of the same kind, then times every call with ``perf_counter_ns`` and counts the SQL statements
it sends. The baseline is the same lookup written by hand as one SQL statement, run on the same
connection (the DB-API cursor underneath Django) with the same keys: the ratio is what the ORM,
the query shape and the Python around it cost over the database's own work.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.workloads.common import Result, counting_sql, stats_from, time_each

TARGET_P99_MS = 10.0
COLS = "id, member_no, name, gender, birthday, phone, status, home_store_id, completeness"
MCOLS = ", ".join(f"m.{c.strip()}" for c in COLS.split(","))
LIVE = "status IN ('active', 'pending')"
TOP = "\U0010ffff"
# Very common initials (张伟 王静 李娜 刘洋 王军 …): the worst cases of a pinyin search.
COMMON_INITIALS = [
    "zw",
    "wj",
    "ln",
    "ly",
    "wf",
    "lj",
    "zj",
    "zl",
    "cj",
    "wy",
    "zm",
    "lh",
    "wxy",
    "zxy",
    "wjg",
    "ljh",
    "zh",
    "cl",
    "hz",
    "yj",
]


@dataclass
class Case:
    query: str  # what the clerk types
    expect_id: int | None  # the member that must be among the results (None: no single answer)
    params: tuple[Any, ...]  # parameters of the baseline statement


@dataclass
class Workload:
    name: str
    description: str
    baseline_sql: str
    make: Callable[[random.Random, dict[str, Any]], Case]


def _initials(name: str) -> str:
    from carecard.core.names import pinyin_keys

    return pinyin_keys(name)[0]


def _name_prefix_case(rng: random.Random, m: dict[str, Any]) -> Case:
    # A third type only the surname (王: ~7 % of all members, the widest range there is).
    surname_len = 2 if m["name"][:2] in ("欧阳", "司马", "诸葛") else 1
    prefix = m["name"][:surname_len] if rng.random() < 0.33 else m["name"][: surname_len + 1]
    return Case(prefix, None, (prefix, prefix + TOP))


def _pinyin_case(rng: random.Random, m: dict[str, Any]) -> Case:
    q = rng.choice(COMMON_INITIALS) if rng.random() < 0.5 else _initials(m["name"])
    return Case(q, None, (q, q + TOP))


WORKLOADS = [
    Workload(
        "phone",
        "full mobile number (13812345678)",
        f"SELECT {COLS} FROM members_member WHERE phone = %s AND {LIVE} LIMIT 20",
        lambda rng, m: Case(m["phone"], m["id"], (m["phone"],)),
    ),
    Workload(
        "card",
        "card number: virtual V+member_no, or a physical card",
        f"SELECT {MCOLS} FROM members_card c JOIN members_member m ON m.id = c.member_id "
        f"WHERE c.number = %s AND m.{LIVE}",
        lambda rng, m: Case(m["card"], m["id"], (m["card"],)),
    ),
    Workload(
        "pinyin",
        "pinyin initials, 2-3 letters; half of them the most common (zw, wj, ln …)",
        f"SELECT {COLS} FROM members_member WHERE id IN (SELECT member_id FROM "
        "members_membersearchkey WHERE key >= %s AND key < %s ORDER BY key, member_id LIMIT 40) "
        f"AND {LIVE} LIMIT 20",
        _pinyin_case,
    ),
    Workload(
        "tail_name",
        "last 4 digits + Chinese name (5678张伟)",
        f"SELECT {COLS} FROM members_member WHERE phone_tail = %s AND name >= %s AND name < %s "
        f"AND {LIVE} LIMIT 20",
        lambda rng, m: Case(
            m["phone"][-4:] + m["name"], m["id"], (m["phone"][-4:], m["name"], m["name"] + TOP)
        ),
    ),
    Workload(
        "tail_pinyin",
        "last 4 digits + pinyin initials (5678 zw)",
        f"SELECT {COLS} FROM members_member m WHERE phone_tail = %s AND {LIVE} AND EXISTS "
        "(SELECT 1 FROM members_membersearchkey k WHERE k.member_id = m.id AND k.key >= %s "
        "AND k.key < %s) LIMIT 20",
        lambda rng, m: Case(
            m["phone"][-4:] + " " + _initials(m["name"]),
            m["id"],
            (m["phone"][-4:], _initials(m["name"]), _initials(m["name"]) + TOP),
        ),
    ),
    Workload(
        "name",
        "name prefix: surname alone (王) or surname + first given character (王建)",
        f"SELECT {COLS} FROM members_member WHERE name >= %s AND name < %s AND {LIVE} "
        "ORDER BY name, birthday LIMIT 20",
        _name_prefix_case,
    ),
    Workload(
        "qr",
        "counter QR token (CC…, HMAC-checked, then by primary key)",
        f"SELECT {COLS} FROM members_member WHERE id = %s AND {LIVE}",
        lambda rng, m: Case("", m["id"], (m["id"],)),
    ),
]


def _sample_members(n_members: int, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` live members drawn deterministically, each with one of its card numbers."""
    from django.db import connection

    rng = random.Random(seed)
    ids = rng.sample(range(1, n_members + 1), min(n_members, int(count * 1.1) + 50))
    rows: dict[int, dict[str, Any]] = {}
    with connection.cursor() as cur:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cur.execute(
                f"SELECT id, phone, name, member_no FROM members_member "
                f"WHERE id IN ({marks}) AND {LIVE}",
                chunk,
            )
            for mid, phone, name, member_no in cur.fetchall():
                rows[mid] = {"id": mid, "phone": phone, "name": name, "member_no": member_no}
            cur.execute(
                f"SELECT member_id, number FROM members_card WHERE member_id IN ({marks}) "
                "AND status = 'active' ORDER BY member_id, number",
                chunk,
            )
            cards: dict[int, list[str]] = {}
            for mid, number in cur.fetchall():
                cards.setdefault(mid, []).append(number)
            for mid, numbers in cards.items():
                if mid in rows:
                    rows[mid]["card"] = rng.choice(numbers)
    return [rows[i] for i in ids if i in rows and "card" in rows[i]][:count]


def _run_baseline(sql: str, cases: list[Case]) -> list[int]:
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection.cursor()
    if connection.vendor == "sqlite":
        sql = sql.replace("%s", "?")

    def one(case: Case) -> Any:
        raw.execute(sql, case.params)
        return raw.fetchall()

    latencies, _ = time_each(one, cases)
    return latencies


def run(*, members: int, ops: int, warmup: int, seed: int, only: set[str] | None, log: Any):
    from carecard.members import qr
    from carecard.members.selectors import lookup_members

    sample = _sample_members(members, ops + warmup, seed)
    results = []
    for wl in WORKLOADS:
        if only and wl.name not in only:
            continue
        rng = random.Random(f"{seed}:{wl.name}")
        cases = [wl.make(rng, m) for m in sample]
        warm, timed = cases[:warmup], cases[warmup:]
        if wl.name == "qr":
            # Tokens rotate every minute: mint them just before the timed loop.
            for case in cases:
                case.query = qr.make_token(case.params[0])

        def call(case: Case) -> list[Any]:
            return lookup_members(case.query)[1]

        time_each(call, warm)
        _run_baseline(wl.baseline_sql, warm)

        def keep(case: Case, rows: list[Any]) -> tuple[int, bool | None]:
            hit = None if case.expect_id is None else any(m.pk == case.expect_id for m in rows)
            return len(rows), hit

        with counting_sql() as counter:
            latencies, kept = time_each(call, timed, keep)
        measured = stats_from(latencies, sql=counter.count)
        base_lat = _run_baseline(wl.baseline_sql, timed)
        baseline = stats_from(base_lat, sql=len(base_lat))
        hits = [hit for _n, hit in kept if hit is not None]
        rows_avg = sum(n for n, _hit in kept) / max(1, len(kept))
        notes = []
        extra: dict[str, Any] = {"rows_per_op": round(rows_avg, 1)}
        if hits:
            extra["found_pct"] = round(100 * sum(hits) / len(hits), 2)
            if extra["found_pct"] < 100:
                notes.append(f"expected member missing in {len(hits) - sum(hits)} lookups")
        result = Result(
            workload=f"lookup_{wl.name}",
            description=wl.description,
            measured=measured,
            baseline=baseline,
            baseline_description="one hand-written SQL statement, same connection",
            target=f"p99 ≤ {TARGET_P99_MS:g} ms",
            target_met=measured.p99_ms <= TARGET_P99_MS,
            notes=notes,
            extra=extra,
        )
        log(
            f"  lookup_{wl.name:<12} p50 {measured.p50_ms:7.3f} ms  p99 {measured.p99_ms:7.3f} ms"
            f"  {measured.sql_per_op} SQL/op  baseline p99 {baseline.p99_ms:.3f} ms"
            f"  rows {rows_avg:.1f}  found {extra.get('found_pct', '-')}"
        )
        results.append(result)
    return results

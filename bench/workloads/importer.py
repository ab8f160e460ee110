"""Member import (I-2): ``carecard.members.importers.import_members`` on a 1 M-row CSV.

The file is generated deterministically (cached in ``bench/out/``): the columns a chain's ERP
export carries — external code, name, mobile, gender, birthday, ID number for a fifth of the rows
(valid GB 11643 checksums, so encryption and the blind index are exercised), address, store code,
enrolment time, consents and a physical card number for 30 %. Every row is valid, so validated
rows/s = rows/s. Like most ERP exports the file carries province / city / district next to the
street address, so the importer need not parse addresses (``jionlp`` takes ~40 ms per address on
the benchmark machine: an address-only file imports at a few dozen rows/s per core).

It is imported into a freshly migrated database (PostgreSQL: ``carecard_bench_import``; SQLite:
``bench/out/sqlite-import/``): with the bulk path (``bulk=True``, COPY) on PostgreSQL and the
standard path on SQLite, which has no bulk path. The baseline loads the same file into a bare
table of text columns: PostgreSQL ``COPY … FROM STDIN (FORMAT csv)``, or on SQLite one
``executemany`` in one transaction — the physical limit of getting the bytes into the database.
On PostgreSQL a second reference, the write floor, copies the rows the import wrote (members,
cards, consents, pinyin keys) into copies of their tables with the same indexes, constraints and
foreign keys: the time PostgreSQL itself needs to store them, which no importer can beat.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

from bench.datagen import (
    DISTRICTS,
    EPOCH,
    SPAN_SECONDS,
    STORES,
    STREETS,
    NameGen,
    phone_for,
    physical_card_for,
)
from bench.workloads.common import Result, Stats

CSV_VERSION = 2
TARGET_ROWS_PER_S = 100_000
HEADER = [
    "external_code",
    "name",
    "phone",
    "gender",
    "birthday",
    "id_number",
    "address",
    "province",
    "city",
    "district",
    "store_code",
    "enrolled_at",
    "consent_terms",
    "consent_marketing",
    "consent_health_data",
    "card_number",
]
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_REGIONS = ["330102", "330105", "330106", "330108", "330109", "330110", "330113", "330114"]
_BIRTH_EPOCH = dt.date(1940, 1, 1)


def id_number(region: str, birthday: dt.date, seq: int) -> str:
    """A mainland ID number with its GB 11643 check character."""
    body = f"{region}{birthday:%Y%m%d}{seq:03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + _ID_CHECK[total % 11]


def write_csv(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed + 7)
    names = NameGen(rng)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(rows):
            name, gender = names.name()
            ident = ""
            if i % 5 == 0:
                k = i // 5
                male = gender == "M"
                birthday = _BIRTH_EPOCH + dt.timedelta(days=k % 23000)
                seq = (k // 23000) * 2 + (1 if male else 0)
                ident = id_number(
                    _ID_REGIONS[(k // 23000 // 500) % len(_ID_REGIONS)], birthday, seq
                )
            else:
                birthday = _BIRTH_EPOCH + dt.timedelta(days=rng.randrange(23000))
            district = rng.randrange(len(DISTRICTS))
            enrolled = EPOCH + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
            w.writerow(
                [
                    f"ERP{i + 1:08d}",
                    name,
                    phone_for(i, salt=11),
                    "男" if gender == "M" else "女",
                    birthday.isoformat(),
                    ident,
                    f"浙江省杭州市{DISTRICTS[district]}{rng.choice(STREETS)}{rng.randrange(1, 999)}"
                    "号",
                    "浙江省",
                    "杭州市",
                    DISTRICTS[district],
                    STORES[district % len(STORES)][0],
                    enrolled.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    ),
                    "是",
                    "是" if rng.random() < 0.6 else "否",
                    "是" if rng.random() < 0.4 else "否",
                    physical_card_for(10_000_000 + i) if rng.random() < 0.3 else "",
                ]
            )
    tmp.replace(path)


def _baseline(path: Path) -> tuple[float, int]:
    """Seconds to load the file into a bare table of text columns, and the rows loaded."""
    from django.db import connection

    cols = ", ".join(f"{c} text" for c in HEADER)
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_copy_members")
        cur.execute(f"CREATE TABLE bench_copy_members ({cols})")
    raw = connection.connection
    t0 = time.perf_counter()
    if connection.vendor == "postgresql":
        sql = "COPY bench_copy_members FROM STDIN (FORMAT csv, HEADER true)"
        with raw.cursor() as cur, cur.copy(sql) as cp, path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
    else:
        cur = raw.cursor()
        cur.execute("BEGIN")
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader)
            marks = ", ".join("?" * len(HEADER))
            cur.executemany(f"INSERT INTO bench_copy_members VALUES ({marks})", reader)
        cur.execute("COMMIT")
    seconds = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM bench_copy_members")
        count = cur.fetchone()[0]
        cur.execute("DROP TABLE bench_copy_members")
    return seconds, count


_FLOOR_TABLES = ("members_member", "members_card", "members_consent", "members_membersearchkey")


def _write_floor() -> tuple[float, dict[str, int]]:
    """Seconds to write the rows the import wrote, already prepared and in the database, into
    copies of their tables with the same indexes, constraints and foreign keys, in one
    transaction: what PostgreSQL itself needs, the best any importer can do (PostgreSQL only)."""
    from django.db import connection, transaction

    copies = {t: f"bench_floor_{t.split('_', 1)[1]}" for t in _FLOOR_TABLES}
    with connection.cursor() as cur:
        for copy in copies.values():
            cur.execute(f"DROP TABLE IF EXISTS {copy} CASCADE")
        for table, copy in copies.items():
            cur.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)")
        for table, copy in copies.items():
            cur.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype = 'f'",
                [table],
            )
            for (definition,) in cur.fetchall():
                for parent, parent_copy in copies.items():
                    definition = definition.replace(
                        f"REFERENCES {parent}(", f"REFERENCES {parent_copy}("
                    )
                cur.execute(f"ALTER TABLE {copy} ADD {definition}")
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        for table, copy in copies.items():
            cur.execute(f"INSERT INTO {copy} SELECT * FROM {table}")
            counts[table] = cur.rowcount
    seconds = time.perf_counter() - t0
    with connection.cursor() as cur:
        for copy in copies.values():
            cur.execute(f"DROP TABLE {copy} CASCADE")
    return seconds, counts


def _stats(rows: int, seconds: float) -> Stats:
    per_row_ms = seconds * 1000 / rows if rows else 0.0
    return Stats(
        ops=rows,
        seconds=round(seconds, 2),
        throughput=round(rows / seconds, 1) if seconds else 0.0,
        p50_ms=round(per_row_ms, 4),
        p95_ms=round(per_row_ms, 4),
        p99_ms=round(per_row_ms, 4),
        max_ms=round(per_row_ms, 4),
    )


def run(*, rows: int, seed: int, out: Path, log: Any) -> list[Result]:
    from django.db import connection

    from bench.datagen import Loader

    try:
        from carecard.members.importers import import_members
    except ImportError as exc:
        log(f"  import: skipped, carecard.members.importers is not importable ({exc})")
        return []
    path = out / f"members-{rows}-{seed}-v{CSV_VERSION}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        write_csv(path, rows, seed)
        log(
            f"  import: wrote {path.name} ({path.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    Loader(members=0, seed=seed, log=log).stores()
    bulk = connection.vendor == "postgresql"
    from bench.workloads.common import counting_sql

    log(f"  import: import_members({path.name}, bulk={bulk}) …")
    t0 = time.perf_counter()
    with counting_sql() as counter:
        report = import_members(path, bulk=bulk)
    seconds = time.perf_counter() - t0
    validated = report.total
    measured = _stats(validated, seconds)
    measured.sql_per_op = round(counter.count / validated, 4) if validated else None
    base_s, base_rows = _baseline(path)
    baseline = _stats(base_rows, base_s)
    notes = []
    floor: dict[str, Any] = {}
    if connection.vendor == "postgresql":
        floor_s, floor_counts = _write_floor()
        floor = {"seconds": round(floor_s, 1), "rows": floor_counts}
        floor_rate = validated / floor_s if floor_s else 0.0
        notes.append(
            f"write floor: PostgreSQL alone needs {floor_s:.1f} s ({floor_rate:,.0f} member "
            "rows/s) to write these members, cards, consents and pinyin keys with their indexes "
            "and foreign keys, from rows already in the database"
        )
        log(f"  import: write floor {floor_s:.1f} s = {floor_rate:,.0f} rows/s ({floor_counts})")
    if report.rejected:
        first = report.errors[:3]
        notes.append(f"{report.rejected} rows rejected, e.g. {first}")
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM members_member")
        members_after = cur.fetchone()[0]
    extra = {
        "created": report.created,
        "updated": report.updated,
        "rejected": report.rejected,
        "members_in_db": members_after,
        "sql_statements": counter.count,
    }
    if floor:
        extra["write_floor"] = floor
    if getattr(report, "timings", None):
        extra["timings"] = {k: round(v, 1) for k, v in report.timings.items()}
    log(
        f"  import: {validated:,} rows in {seconds:.1f} s = {validated / seconds:,.0f} rows/s "
        f"(created {report.created:,}, rejected {report.rejected:,}); baseline {base_rows:,} rows "
        f"in {base_s:.1f} s = {base_rows / base_s:,.0f} rows/s"
    )
    is_pg = connection.vendor == "postgresql"
    return [
        Result(
            workload="import_members" + (" (bulk)" if bulk else " (standard)"),
            description="validated member rows from CSV, as enrolment creates them",
            measured=measured,
            baseline=baseline,
            baseline_description=(
                "COPY of the same file into a bare text table"
                if is_pg
                else "executemany of the same rows into a bare text table"
            ),
            unit="rows",
            target=f"≥ {TARGET_ROWS_PER_S:,} rows/s" if is_pg else "",
            target_met=(validated / seconds >= TARGET_ROWS_PER_S) if is_pg else None,
            notes=notes,
            extra=extra,
        )
    ]

"""Twelve months of sales history for the counter benchmark (issue #3: 10 M sale lines).

Issue #3 measures the counter "at 1 M members and 10 M sale lines": the commit's indexes, the
member's open points lots and aggregates are those of a chain that has been selling for a year.
This module writes that year into the benchmark database, deterministically by seed, in bulk:
``checkout_sale``, ``checkout_saleline``, ``checkout_salediscount``, ``checkout_saletender``,
``loyalty_pointsentry``, ``loyalty_pointslot``, ``loyalty_pointslotuse``,
``loyalty_pointsaccount``, ``checkout_memberstats`` and ``core_idempotencyrecord`` (one per
sale, as the POS's retried ``sale_commit`` leaves; the stored response is a short
``{"sale_id", "receipt_no"}`` rather than the whole receipt), plus the yearly-spend vouchers
(T-3) through ``coupon_issue`` itself.

The rows are the ones ``sale_commit`` writes, consistent with each other: every account's
balance is the sum of its entries and of its open lots, each sale's totals are its lines',
each line's discount its discount rows', the tenders cover the net, and the member aggregates
are their sales'. :func:`verify` checks all of that on a sample after the build (and the counter
benchmark runs it again before measuring).

**Shape.** The window is the 365 days before the build date (the benchmark then sells "today").
Active members only buy; 30 % of them not at all in the window, the others with a lognormal
activity (a few very frequent buyers), never before their enrolment. Days follow a weekly
rhythm with member-day and flu-season peaks, hours the counter's day. A receipt has 1–4 lines
of the benchmark catalogue (quantity mostly 1), mostly in the member's home store, paid by
WeChat, Alipay, card or cash; 8 % of receipts of members holding ≥ 500 points pay part with
points (``pay`` entry, lots taken oldest first). The daily expiry job's entries are written
where it would have run (wangqu: every lot expires on 31 December, so on 1 January each member
with points gets one ``expire`` entry).

**Pricing.** Calling ``price_basket`` and ``earn_points`` for 4 M receipts would take half an
hour, so each line is priced once per (SKU, quantity, kind of day) by the real
``price_basket`` and cached, and the receipt's points (one ``floor`` per receipt, spread over the
lines by largest remainder, points tenders laid over the earning lines) are computed here in
whole cents. Every 1 000th receipt is priced and earned again by the real engines and compared
field by field, texts included; a difference stops the build. An earning plan this mirror does
not cover (multipliers, bonus, minimum) stops it too.

**Loading.** PostgreSQL: in one transaction the tables are truncated, their secondary indexes,
unique and foreign-key constraints dropped, the rows streamed with ``COPY … FREEZE``, then the
indexes and constraints recreated from their catalog definitions (the foreign keys are
validated), the sequences moved past the ids, and ``VACUUM ANALYZE`` run. SQLite: with
``foreign_keys=OFF``, ``synchronous=OFF`` and a rollback journal for the build only, the rows
are inserted with ``executemany`` in one transaction, the secondary indexes dropped before and
created after, ``PRAGMA foreign_key_check`` run on every table, and the database returned to
WAL, ``synchronous=FULL`` and foreign keys on. SQLite is not ``ANALYZE``d: the application never
does it either.
"""

from __future__ import annotations

import array
import bisect
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import random
import time
import traceback
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

HISTORY_VERSION = 1
DEFAULT_SALE_LINES = 10_000_000

# The tables the history fills (and empties first), in write order.
TABLES = (
    "checkout_sale",
    "checkout_saleline",
    "checkout_salediscount",
    "checkout_saletender",
    "loyalty_pointsentry",
    "loyalty_pointslot",
    "loyalty_pointslotuse",
    "loyalty_pointsaccount",
    "checkout_memberstats",
    "core_idempotencyrecord",
)
DORMANT = 0.30  # active members who buy nothing in the window
ACTIVITY_SIGMA = 1.0  # lognormal spread of purchase frequency among buyers
LINE_WEIGHTS = (1, 1, 1, 1)  # 1–4 lines per receipt, as the benchmark's baskets
QTY_WEIGHTS = (75, 20, 5)  # quantity 1, 2, 3
HOME_STORE = 0.8
TENDERS = (("wechat", 40), ("alipay", 25), ("bank_card", 15), ("cash", 20))
POINTS_PAY_SHARE = 0.08  # of receipts whose member holds ≥ POINTS_PAY_MIN points
POINTS_PAY_MIN = 500
HOURS = tuple(range(8, 22))
HOUR_WEIGHTS = (2, 6, 9, 8, 5, 4, 5, 6, 7, 9, 10, 8, 5, 2)
WEEKDAY = (0.92, 0.9, 0.92, 0.94, 1.0, 1.24, 1.18)  # Monday … Sunday
MEMBER_DAY_BOOST = 1.8
FLU_MONTHS = frozenset({12, 1, 2})
CHECK_EVERY = 1000  # receipts between two checks against the real engines
DAY = 86_400


_CENTS: dict[int, str] = {}


def cents(c: int) -> str:
    """Whole cents as the decimal text Django writes (``1234`` → ``"12.34"``)."""
    text = _CENTS.get(c)
    if text is None:
        text = f"{c // 100}.{c % 100:02d}" if c >= 0 else "-" + cents(-c)
        if len(_CENTS) < 2_000_000:
            _CENTS[c] = text
    return text


def allocate_units(total: int, weights: list[int]) -> list[int]:
    """``carecard.core.money.allocate_units`` on integer weights (largest remainder, ties to
    the earlier weight), without Fractions."""
    n = len(weights)
    w_sum = sum(weights)
    if total == 0 or n == 0:
        return [0] * n
    if w_sum == 0:
        weights, w_sum = [1] * n, n
    parts = [total * w // w_sum for w in weights]
    leftover = total - sum(parts)
    if leftover:
        rems = [total * w % w_sum for w in weights]
        for i in sorted(range(n), key=lambda i: (-rems[i], i))[:leftover]:
            parts[i] += 1
    return parts


class _Member:
    """One buyer's running state: points account, open lots, aggregates."""

    __slots__ = (
        "balance",
        "earned",
        "first",
        "last",
        "last_store",
        "lots",
        "months",
        "spend",
        "spent",
        "expired",
        "updated",
        "visits",
        "year_spend",
    )

    def __init__(self) -> None:
        self.balance = self.earned = self.spent = self.expired = 0
        self.updated = 0
        self.lots: list[int] = []  # open lot ids, in spending order (expiry, then id)
        self.first = self.last = 0
        self.last_store = 0
        self.visits = self.spend = 0
        self.months: dict[str, list[int]] = {}  # "YYYY-MM" → [visits, cents]
        self.year_spend: dict[int, int] = {}


# ----------------------------------------------------------------------------- sinks
class _Sink:
    """Rows of one table, gathered in the generating process and sent in chunks to the
    process that writes them: COPY text lines (PostgreSQL) or tuples (SQLite)."""

    CHUNK = 20_000

    def __init__(self, table: str, pipe: Any, pg: bool) -> None:
        self.table = table
        self.pipe = pipe
        self.pg = pg
        self.buf: list[Any] = []
        self.count = 0

    def add(self, row: tuple | str) -> None:
        """A row: a tuple of values, or (PostgreSQL) already a line of COPY text."""
        if self.pg and type(row) is not str:
            row = "\t".join(map(str, row))
        self.buf.append(row)
        if len(self.buf) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        self.count += len(self.buf)
        payload = "\n".join(self.buf) + "\n" if self.pg else self.buf
        self.pipe.send(("rows", self.table, payload))
        self.buf = []


class _Writer:
    """Writes the chunks of one table: ``COPY … FREEZE`` or ``executemany``."""

    def __init__(self, raw: Any, table: str, columns: list[str], pg: bool) -> None:
        self.raw = raw
        self.pg = pg
        self.seconds = 0.0
        cols = ", ".join(f'"{c}"' for c in columns)
        if pg:
            self.sql = f"COPY {table} ({cols}) FROM STDIN WITH (FREEZE)"
        else:
            self.cur = raw.cursor()
            marks = ", ".join("?" * len(columns))
            self.sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"

    def write(self, payload: Any) -> None:
        t0 = time.perf_counter()
        self._write(payload)
        self.seconds += time.perf_counter() - t0

    def _write(self, payload: Any) -> None:
        if self.pg:
            with self.raw.cursor() as cur, cur.copy(self.sql) as copy:
                copy.write(payload)
        else:
            self.cur.executemany(self.sql, payload)


# ----------------------------------------------------------------------------- builder
class Builder:
    """Plans and writes the history into the migrated benchmark database (Django's default
    connection), after the members and the counter's catalogue and rules exist."""

    def __init__(
        self,
        *,
        sale_lines: int,
        seed: int,
        log: Callable[[str], None] = print,
        end: dt.date | None = None,
    ) -> None:
        from django.db import connection
        from django.utils import timezone

        self.connection = connection
        self.vendor = connection.vendor
        self.sale_lines = sale_lines
        self.seed = seed
        self.log = log
        tz = timezone.get_current_timezone()
        self.tz = tz
        self.end = end or timezone.localdate()
        self.start = self.end - dt.timedelta(days=365)
        start_local = dt.datetime.combine(self.start, dt.time(0), tzinfo=tz)
        end_local = dt.datetime.combine(self.end, dt.time(0), tzinfo=tz)
        offsets = {start_local.utcoffset(), end_local.utcoffset()}
        if len(offsets) != 1:
            raise SystemExit("history: the time zone changes its UTC offset in the window")
        self.offset = int(offsets.pop().total_seconds())  # local = UTC + offset
        self.start_ts = int(start_local.timestamp())
        self.end_ts = int(end_local.timestamp())
        self.days = [self.start + dt.timedelta(days=i) for i in range(365)]
        pg = self.vendor == "postgresql"
        self.NULL: Any = "\\N" if pg else None
        self.TRUE: Any = "t" if pg else 1
        self.FALSE: Any = "f" if pg else 0
        # Timestamps: whole seconds, UTC (Django writes naive UTC text on SQLite).
        self._utc_days: dict[int, str] = {}
        suffix = "+00" if pg else ""
        self._hms = [
            f"{h:02d}:{m:02d}:{sec:02d}{suffix}"
            for h in range(24)
            for m in range(60)
            for sec in range(60)
        ]
        self.counts: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    # -- value formatting ----------------------------------------------------------------
    def ts(self, t: int) -> str:
        d, s = divmod(t, DAY)
        day = self._utc_days.get(d)
        if day is None:
            day = self._utc_days[d] = (dt.date(1970, 1, 1) + dt.timedelta(days=d)).isoformat() + " "
        return day + self._hms[s]

    def json(self, value: Any) -> str:
        if self.vendor == "postgresql":
            text = json.dumps(value, ensure_ascii=False)
            return text.replace("\\", "\\\\") if "\\" in text else text
        return json.dumps(value)  # what Django's JSONField writes on SQLite

    # -- the counter's configuration ------------------------------------------------------
    def _config(self) -> None:
        from carecard.catalog.models import Product
        from carecard.chain.models import Store
        from carecard.checkout import config
        from carecard.loyalty.rules import Member as PricingMember

        self.settings = config.settings_get()
        self.policy = config.pricing_policy(self.settings)
        self.rule = config.earning_rule()
        self.program = config.program()
        self.benefits = list(config.spend_benefits())
        self.points_per_yuan = self.settings.points_per_yuan
        rule = self.rule
        if (
            rule.rounding != "floor"
            or rule.sku_multipliers
            or rule.category_multipliers
            or rule.tier_multipliers
            or rule.day_multipliers
            or rule.receipt_bonus
            or rule.min_amount
            or config.tiers()
        ):
            raise SystemExit(
                "history: the earning plan or tiers are outside what the fast mirror covers "
                "(floor rounding, no multipliers, bonus, minimum or tiers): see bench/history.py"
            )
        self.app_cents = int(rule.amount_per_point * 100)
        self.stores = list(
            Store.objects.filter(code__startswith="BENCH")
            .order_by("pk")
            .values_list("pk", "code", "region_id")
        )
        regions = {r for _pk, _c, r in self.stores}
        if len(regions) != 1:
            raise SystemExit("history: the benchmark stores must share one region")
        self.rules = config.pricing_rules(regions.pop())
        self.store_code = {pk: code for pk, code, _r in self.stores}
        self.store_ids = [pk for pk, _c, _r in self.stores]
        self.items: dict[str, Any] = {}
        self.products: list[tuple[str, int, str]] = []  # (sku, id, name) by index
        for p in Product.objects.filter(sku__startswith="BENCH-").order_by("pk"):
            self.items[p.sku] = config.engine_item(p)
            self.products.append((p.sku, p.pk, p.name))
        if not self.products:
            raise SystemExit("history: the benchmark catalogue (BENCH-*) is missing")
        self.pricing_member = PricingMember(is_member=True, tier=None, birthday=None)
        self._day_classes()
        self._exclusions()

    def _day_classes(self) -> None:
        """Which discounts each day of the window gives (ordinary day, member day …): a
        probe line of every product priced on each day; days that price alike share a class."""
        from carecard.checkout.engine import Line, price_basket

        probe = [Line(self.items[sku], 1) for sku, _id, _n in self.products]
        classes: dict[tuple, int] = {}
        self.day_class: list[int] = []
        self.class_day: list[dt.date] = []
        for day in self.days:
            priced = price_basket(probe, self.pricing_member, self.rules, [], self.policy, day)
            sig = tuple((d.kind, d.rule_id, d.amount) for pl in priced.lines for d in pl.discounts)
            if sig not in classes:
                classes[sig] = len(classes)
                self.class_day.append(day)
            self.day_class.append(classes[sig])
        member_day_classes = {
            c for sig, c in classes.items() if any(kind == "member_day" for kind, _r, _a in sig)
        }
        # Member days draw more customers.
        self.member_days = {i for i, c in enumerate(self.day_class) if c in member_day_classes}
        self.line_cache: dict[tuple[int, int, int], tuple] = {}

    def _line(self, day_class: int, product: int, qty: int) -> tuple:
        """(original, net, discounts) of one line, cents; priced by the real engine once."""
        key = (day_class, product, qty)
        hit = self.line_cache.get(key)
        if hit is not None:
            return hit
        from carecard.checkout.engine import Line, price_basket

        sku = self.products[product][0]
        priced = price_basket(
            [Line(self.items[sku], qty)],
            self.pricing_member,
            self.rules,
            [],
            self.policy,
            self.class_day[day_class],
        )
        pl = priced.lines[0]
        discounts = tuple(
            (
                d.kind,
                str(d.rule_id or ""),
                d.coupon_code or "",
                int(d.amount * 100),
                d.reason,
                d.funded_by,
                d.points_funded,
            )
            for d in pl.discounts
            if d.amount > 0
        )
        hit = (int(pl.original * 100), int(pl.net * 100), discounts, int(pl.item.shelf_price * 100))
        self.line_cache[key] = hit
        return hit

    def _exclusions(self) -> None:
        from carecard.checkout.engine import Line, price_basket
        from carecard.loyalty.earning import TENDER_LABELS, Tender, earn_points

        self.exclusion: list[str | None] = []
        for sku, _id, _name in self.products:
            priced = price_basket(
                [Line(self.items[sku], 1)],
                self.pricing_member,
                self.rules,
                [],
                self.policy,
                self.start,
            )
            earning = earn_points(
                priced, [Tender("cash", priced.net)], self.rule, self.pricing_member, self.start
            )
            self.exclusion.append(earning.lines[0].exclusion)
        self.label = self.rule.label
        self.points_label = TENDER_LABELS["points"]
        if self.rule.earns_on("points"):
            raise SystemExit("history: points tenders earn points under this plan")

    # -- the plan --------------------------------------------------------------------------
    def _plan(self) -> tuple[list[int], int]:
        """Every receipt as one sortable int: (time, member, lines − 1), in time order."""
        from carecard.members.models import Member

        rng = random.Random(self.seed * 7919 + 1)
        weights_day = []
        for day in self.days:
            w = WEEKDAY[day.weekday()]
            if day.month in FLU_MONTHS:
                w *= 1.3
            elif day.month in (7, 8):
                w *= 0.92
            weights_day.append(w)
        for i in self.member_days:
            weights_day[i] *= MEMBER_DAY_BOOST
        cum_day: list[float] = []
        acc = 0.0
        for w in weights_day:
            acc += w
            cum_day.append(acc)
        total_day = cum_day[-1]
        self.home: dict[int, int] = {}
        ids: list[int] = []
        cum_w: list[float] = []
        first_day: list[int] = []
        enrolled_ts: list[int] = []
        acc = 0.0
        for pk, enrolled, home in (
            Member.objects.filter(status="active")
            .order_by("pk")
            .values_list("pk", "enrolled_at", "home_store_id")
            .iterator(chunk_size=50_000)
        ):
            e_ts = int(enrolled.timestamp())
            if e_ts >= self.end_ts - DAY or rng.random() < DORMANT:
                continue
            d0 = max(0, (e_ts + self.offset - (self.start_ts + self.offset)) // DAY)
            room = total_day - (cum_day[d0 - 1] if d0 else 0.0)
            acc += rng.lognormvariate(0.0, ACTIVITY_SIGMA) * room / total_day
            ids.append(pk)
            cum_w.append(acc)
            first_day.append(d0)
            enrolled_ts.append(e_ts)
            self.home[pk] = home
        if not ids:
            raise SystemExit("history: no active members to sell to")
        self.buyers_planned = len(ids)
        mbits = max(ids).bit_length()
        self.mbits = mbits
        hour_cum = []
        acc_h = 0
        for w in HOUR_WEIGHTS:
            acc_h += w
            hour_cum.append(acc_h)
        keys: list[int] = []
        lines_left = self.sale_lines
        picks = range(len(ids))
        while lines_left > 0:
            for i in rng.choices(picks, cum_weights=cum_w, k=max(1000, lines_left // 2)):
                pk = ids[i]
                d0 = first_day[i]
                x = (cum_day[d0 - 1] if d0 else 0.0) + rng.random() * (
                    total_day - (cum_day[d0 - 1] if d0 else 0.0)
                )
                d = min(364, max(d0, bisect.bisect_right(cum_day, x)))
                hour = HOURS[bisect.bisect_right(hour_cum, rng.random() * acc_h)]
                t = self.start_ts + d * DAY + hour * 3600 + rng.randrange(3600)
                if t <= enrolled_ts[i]:
                    t = enrolled_ts[i] + rng.randrange(60, 3600)
                if t >= self.end_ts:
                    continue
                n = min(lines_left, rng.randint(1, len(LINE_WEIGHTS)))
                keys.append((((t - self.start_ts) << mbits | pk) << 2) | (n - 1))
                lines_left -= n
                if lines_left == 0:
                    break
        keys.sort()
        return keys, mbits

    # -- writing ---------------------------------------------------------------------------
    def _produce(self, keys: list[int], mbits: int) -> None:
        """Generate the rows in a forked process while this one writes them (the generator is
        Python-bound; the database's work overlaps with it)."""
        pg = self.vendor == "postgresql"
        raw = self.connection.connection
        writers = {t: _Writer(raw, t, cols, pg) for t, cols in self.columns.items()}
        ctx = mp.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=self._producer, args=(keys, mbits, send))
        proc.start()
        send.close()
        try:
            while True:
                msg = recv.recv()
                if msg[0] == "rows":
                    writers[msg[1]].write(msg[2])
                elif msg[0] == "done":
                    self.timings["generator_cpu_s"] = msg[1].pop("generator_cpu_s")
                    self.counts.update(msg[1])
                    self.crossings = [(self.benefits[i], m, t, y) for i, m, t, y in msg[2]]
                    self.buyers = msg[3]
                    break
                else:
                    raise SystemExit(f"history: the generator failed:\n{msg[1]}")
        finally:
            proc.join()
        self.timings["rows_db_s"] = round(sum(w.seconds for w in writers.values()), 1)

    def _producer(self, keys: list[int], mbits: int, pipe: Any) -> None:
        """The forked generator: every row into ``pipe``, then the counts."""
        try:
            pg = self.vendor == "postgresql"
            sinks = {t: _Sink(t, pipe, pg) for t in self.columns}
            self._generate(keys, mbits, sinks)
            self._finish_rows(sinks)
            for sink in sinks.values():
                sink.flush()
            counts = dict(self.counts)
            for table, sink in sinks.items():
                counts.setdefault(table, sink.count)
            index = {id(b): i for i, b in enumerate(self.benefits)}
            crossings = [(index[id(b)], m, t, y) for b, m, t, y in self.crossings]
            counts["generator_cpu_s"] = round(time.process_time(), 1)
            pipe.send(("done", counts, crossings, len(self.members_state)))
        except BaseException:
            pipe.send(("error", traceback.format_exc()))
        finally:
            pipe.close()

    def _columns(self) -> None:
        """The columns written per table; every other column must be the id (assigned by the
        database) or the build stops, so a field added later is not silently left out."""
        from django.apps import apps

        self.columns = {
            "checkout_sale": [
                "id",
                "receipt_no",
                "kind",
                "member_id",
                "store_id",
                "terminal_id",
                "staff_id",
                "original_sale_id",
                "at",
                "business_date",
                "recorded_at",
                "offline",
                "original_total",
                "discount_total",
                "net_total",
                "points_earned",
                "points_spent",
                "points_balance",
                "recovered_amount",
                "explanation",
            ],
            "checkout_saleline": [
                "id",
                "sale_id",
                "member_id",
                "line_no",
                "product_id",
                "sku",
                "name",
                "quantity",
                "unit_price",
                "original",
                "discount",
                "net",
                "points",
                "returned_quantity",
                "returns_line_id",
                "explanation",
            ],
            "checkout_salediscount": [
                "line_id",
                "member_id",
                "kind",
                "rule_ref",
                "coupon_code",
                "amount",
                "reason",
                "funded_by",
                "points_funded",
            ],
            "checkout_saletender": [
                "sale_id",
                "member_id",
                "kind",
                "amount",
                "points",
                "reference",
            ],
            "loyalty_pointsentry": [
                "id",
                "member_id",
                "kind",
                "points",
                "balance_after",
                "at",
                "store_id",
                "actor_id",
                "reference",
                "reason",
                "explanation",
                "corrects_id",
            ],
            "loyalty_pointslot": [
                "id",
                "member_id",
                "entry_id",
                "earned_at",
                "available_at",
                "expires_on",
                "original",
                "remaining",
            ],
            "loyalty_pointslotuse": ["entry_id", "lot_id", "member_id", "points"],
            "loyalty_pointsaccount": [
                "member_id",
                "balance",
                "debt",
                "lifetime_earned",
                "lifetime_spent",
                "lifetime_expired",
                "updated_at",
            ],
            "checkout_memberstats": [
                "member_id",
                "first_purchase_at",
                "last_purchase_at",
                "last_store_id",
                "visits",
                "spend",
                "visits_12m",
                "spend_12m",
                "months",
            ],
            "core_idempotencyrecord": [
                "scope",
                "key",
                "operation",
                "request_hash",
                "status_code",
                "response",
                "created_at",
            ],
        }
        by_table = {m._meta.db_table: m for m in apps.get_models()}
        for table, cols in self.columns.items():
            model_cols = {f.column for f in by_table[table]._meta.concrete_fields}
            unknown = set(cols) - model_cols
            missing = model_cols - set(cols) - {"id"}
            if unknown or missing:
                raise SystemExit(
                    f"history: {table} columns changed (unknown {sorted(unknown)}, not written "
                    f"{sorted(missing)}): update bench/history.py"
                )

    def _generate(self, keys: list[int], mbits: int, sinks: dict[str, Any]) -> None:
        """Replay the receipts in time order into the sinks (lots, accounts and aggregates,
        which later rows change, are written at the end)."""
        from carecard.loyalty.expiry import lot_expires_on

        rng = random.Random(self.seed * 7919 + 2)
        NULL, TRUE, FALSE = self.NULL, self.TRUE, self.FALSE
        ts, jdump = self.ts, self.json
        random_ = rng.random
        bisect_right = bisect.bisect_right
        ymd_of: dict[int, str] = {}
        first_day = (self.start_ts + self.offset) // DAY
        sale_add = sinks["checkout_sale"].add
        line_add = sinks["checkout_saleline"].add
        disc_add = sinks["checkout_salediscount"].add
        tender_add = sinks["checkout_saletender"].add
        entry_add = sinks["loyalty_pointsentry"].add
        use_add = sinks["loyalty_pointslotuse"].add
        idem_add = sinks["core_idempotencyrecord"].add
        products, exclusion, line_of = self.products, self.exclusion, self._line
        n_products = len(products)
        label, points_label = self.label, self.points_label
        app_cents = self.app_cents
        offset, start_ts = self.offset, self.start_ts
        day_class = self.day_class
        policy, months_n = self.program.expiry_policy, self.program.expiry_months
        store_ids, store_code, home = self.store_ids, self.store_code, self.home
        n_stores = len(store_ids)
        tender_kinds = [k for k, _w in TENDERS]
        tender_cum = []
        acc = 0
        for _k, w in TENDERS:
            acc += w
            tender_cum.append(acc)
        qty_cum = []
        acc_q = 0
        for w in QTY_WEIGHTS:
            acc_q += w
            qty_cum.append(acc_q)
        ppy = self.points_per_yuan
        seed, blake2b = self.seed, hashlib.blake2b
        benefits = [(b, int(b.threshold * 100)) for b in self.benefits]
        self.crossings: list[tuple[Any, int, int, int]] = []
        members: dict[int, _Member] = {}
        self.members_state = members
        # Lots, by id − 1: member, entry, earned (ts), expiry (ordinal or 0), original, left.
        lot_member, lot_entry = array.array("q"), array.array("q")
        lot_ts, lot_exp = array.array("q"), array.array("l")
        lot_orig, lot_rem = array.array("l"), array.array("l")
        self.lots = (lot_member, lot_entry, lot_ts, lot_exp, lot_orig, lot_rem)
        expiring: dict[int, set[int]] = {}  # expiry ordinal → members with lots expiring then
        exp_cache: dict[int, int] = {}  # local day ordinal → expiry ordinal (0: never)
        mmask = (1 << mbits) - 1
        sale_id = line_id = entry_id = 0
        job_day = (start_ts + offset) // DAY  # local day ordinal (epoch days) of the last job
        checks = pay_checks = 0
        line_count = discount_count = pays = 0
        t0 = time.perf_counter()
        last_log = t0
        total = len(keys)
        epoch = dt.date(1970, 1, 1)

        def expire(day: int) -> None:
            """The daily expiry job at the start of local day ``day``: one entry per member,
            lots whose last day is before it, soonest expiry first."""
            nonlocal entry_id
            due = sorted(e for e in expiring if e < day)
            if not due:
                return
            who: set[int] = set()
            for e in due:
                who |= expiring.pop(e)
            at = day * DAY - offset
            at_s = ts(at)
            before = (epoch + dt.timedelta(days=day)).isoformat()
            for m in sorted(who):
                st = members[m]
                gone = [lot for lot in st.lots if 0 < lot_exp[lot - 1] < day and lot_rem[lot - 1]]
                if not gone:
                    continue
                gone.sort(key=lambda lot: (lot_exp[lot - 1], lot))
                points = sum(lot_rem[lot - 1] for lot in gone)
                st.balance -= points
                st.expired += points
                st.updated = at
                entry_id += 1
                entry_add(
                    (
                        entry_id,
                        m,
                        "expire",
                        -points,
                        st.balance,
                        at_s,
                        NULL,
                        NULL,
                        "",
                        "积分到期",
                        jdump({"lots": gone, "before": before}),
                        NULL,
                    )
                )
                for lot in gone:
                    use_add((entry_id, lot, m, lot_rem[lot - 1]))
                    lot_rem[lot - 1] = 0
                dropped = set(gone)
                st.lots = [lot for lot in st.lots if lot not in dropped]

        pg = self.vendor == "postgresql"
        enc = encode_basestring if pg else encode_basestring_ascii
        static: dict[tuple[int, int, int], tuple] = {}
        texts_cache: dict[tuple[int, int, int, int], tuple[str, str, str]] = {}

        def line_static(dclass: int, p: int, q: int) -> tuple:
            """A line's fixed columns, formatted once per (kind of day, product, quantity)."""
            orig_c, net_c, discounts, price_c = line_of(dclass, p, q)
            sku, product_id, name = products[p]
            mid = (
                product_id,
                sku,
                name,
                q,
                cents(price_c),
                cents(orig_c),
                cents(orig_c - net_c),
                cents(net_c),
            )
            disc = [
                (kind, ref, coupon, cents(amount), reason, funded, TRUE if pf else FALSE)
                for kind, ref, coupon, amount, reason, funded, pf in discounts
            ]
            if pg:
                mid = "\t".join(map(str, mid))
                disc = ["\t".join(map(str, d)) for d in disc]
            hit = static[(dclass, p, q)] = (orig_c, net_c, mid, disc, f"实付 ¥{cents(net_c)}")
            return hit

        def copy_escape(text: str) -> str:
            return text.replace("\\", "\\\\") if pg and "\\" in text else text

        for n_sale, key in enumerate(keys):
            nl = (key & 3) + 1
            m = (key >> 2) & mmask
            t = (key >> (mbits + 2)) + start_ts
            local = t + offset
            lday = local // DAY
            while job_day < lday:
                job_day += 1
                expire(job_day)
            d_index = lday - first_day
            dclass = day_class[d_index]
            st = members.get(m)
            if st is None:
                st = members[m] = _Member()
            store = home[m] if random_() < HOME_STORE else store_ids[int(random_() * n_stores)]
            picks: list[int] = []
            while len(picks) < nl:
                p = int(random_() * n_products)
                if p not in picks:
                    picks.append(p)
            lines = []
            for p in picks:
                q = 1 + bisect_right(qty_cum, random_() * acc_q)
                hit = static.get((dclass, p, q)) or line_static(dclass, p, q)
                lines.append((p, q, hit))
            nets = [ln[2][1] for ln in lines]
            net = sum(nets)
            original = sum(ln[2][0] for ln in lines)
            kind = tender_kinds[bisect_right(tender_cum, random_() * acc)]
            pay = pay_cents = 0
            shares = None
            if ppy and st.balance >= POINTS_PAY_MIN and random_() < POINTS_PAY_SHARE:
                earning_idx = [i for i, ln in enumerate(lines) if not exclusion[ln[0]]]
                if earning_idx:
                    # Whole hundreds of points, at most what the earning lines cost.
                    room = sum(nets[i] for i in earning_idx) * ppy // 100
                    pay = min(st.balance, room) // 100 * 100
                    pay_cents = pay * 100 // ppy
                    if pay_cents * ppy != pay * 100:
                        pay = pay_cents = 0
                if pay:
                    shares = [0] * nl
                    parts = allocate_units(pay_cents, [nets[i] for i in earning_idx])
                    for i, part in zip(earning_idx, parts, strict=True):
                        shares[i] = part
            if shares is None:
                earnable = [0 if exclusion[ln[0]] else nets[i] for i, ln in enumerate(lines)]
            else:
                earnable = [
                    0 if exclusion[ln[0]] else nets[i] - shares[i] for i, ln in enumerate(lines)
                ]
            e_total = sum(earnable)
            base = e_total // app_cents if e_total > 0 else 0
            line_points = allocate_units(base, earnable) if nl > 1 else [base]
            earned = base  # no multipliers or bonus (checked in _config)
            if e_total > 0:
                receipt_text = f"{label}：积分基数 ¥{cents(e_total)} → {base} 分，共 {earned} 分"
            else:
                receipt_text = f"{label}：本单无可积分金额"
            # Per line: (text, its JSON-encoded string, the line's explanation JSON).
            line_texts = []
            for i, (p, q, hit) in enumerate(lines):
                share = shares[i] if shares is not None else 0
                if not share:
                    tkey = (dclass, p, q, line_points[i])
                    lt = texts_cache.get(tkey)
                    if lt is None:
                        if exclusion[p]:
                            text = f"{products[p][2]}：不积分（{exclusion[p]}）"
                        else:
                            text = (
                                f"{products[p][2]}：{hit[4]} → 积分基数 ¥{cents(hit[1])} → "
                                f"{line_points[i]} 分"
                            )
                        e = enc(text)
                        lt = texts_cache[tkey] = (
                            text,
                            e,
                            copy_escape('{"text": ' + e + ', "tenders": {}}'),
                        )
                else:
                    text = (
                        f"{products[p][2]}：{hit[4]}，{points_label} ¥{cents(share)} 不积分 → "
                        f"积分基数 ¥{cents(earnable[i])} → {line_points[i]} 分"
                    )
                    e = enc(text)
                    lt = (
                        text,
                        e,
                        copy_escape(
                            '{"text": ' + e + ', "tenders": {"points": "' + cents(share) + '"}}'
                        ),
                    )
                line_texts.append(lt)

            sale_id += 1
            ymd = ymd_of.get(lday)
            if ymd is None:
                ymd = ymd_of[lday] = (epoch + dt.timedelta(days=lday)).isoformat()
            at_s = ts(t)
            if n_sale % CHECK_EVERY == 0 or (pay and pay_checks < 200):
                checks += 1
                pay_checks += 1 if pay else 0
                self._check(
                    d_index,
                    lines,
                    kind,
                    pay,
                    pay_cents,
                    nets,
                    shares or [0] * nl,
                    line_points,
                    [lt[0] for lt in line_texts],
                    receipt_text,
                    earned,
                )
            balance_after = st.balance - pay + earned
            hms = local % DAY
            receipt_no = (
                f"{store_code[store]}-{ymd[:4]}{ymd[5:7]}{ymd[8:]}"
                f"{hms // 3600:02d}{hms // 60 % 60:02d}{hms % 60:02d}-"
                f"{(sale_id * 2654435761) % 16777216:06X}"
            )
            enc_receipt = enc(receipt_text)
            sale_json = copy_escape('{"text": ' + enc_receipt + "}")
            if pg:
                sale_add(
                    f"{sale_id}\t{receipt_no}\tsale\t{m}\t{store}\t\\N\t\\N\t\\N\t{at_s}\t{ymd}"
                    f"\t{at_s}\tf\t{cents(original)}\t{cents(original - net)}\t{cents(net)}"
                    f"\t{earned}\t{pay}\t{balance_after}\t0.00\t{sale_json}"
                )
            else:
                sale_add(
                    (
                        sale_id,
                        receipt_no,
                        "sale",
                        m,
                        store,
                        None,
                        None,
                        None,
                        at_s,
                        ymd,
                        at_s,
                        0,
                        cents(original),
                        cents(original - net),
                        cents(net),
                        earned,
                        pay,
                        balance_after,
                        "0.00",
                        sale_json,
                    )
                )
            for i, (_p, _q, hit) in enumerate(lines):
                line_id += 1
                if pg:
                    line_add(
                        f"{line_id}\t{sale_id}\t{m}\t{i + 1}\t{hit[2]}\t{line_points[i]}\t0\t\\N"
                        f"\t{line_texts[i][2]}"
                    )
                    for d in hit[3]:
                        disc_add(f"{line_id}\t{m}\t{d}")
                else:
                    line_add(
                        (line_id, sale_id, m, i + 1)
                        + hit[2]
                        + (line_points[i], 0, None, line_texts[i][2])
                    )
                    for d in hit[3]:
                        disc_add((line_id, m) + d)
                discount_count += len(hit[3])
            line_count += nl
            reference = f"sale:{sale_id}"
            if pay:
                tender_add((sale_id, m, "points", cents(pay_cents), pay, ""))
            if net - pay_cents > 0 or not pay:
                tender_add(
                    (
                        sale_id,
                        m,
                        kind,
                        cents(net - pay_cents),
                        0,
                        "" if kind == "cash" else f"4200{t}{sale_id:010d}",
                    )
                )
            if pay:
                # points_spend: a pay entry, the lots it took, oldest expiry first.
                pays += 1
                st.balance -= pay
                st.spent += pay
                entry_id += 1
                entry_add(
                    (
                        entry_id,
                        m,
                        "pay",
                        -pay,
                        st.balance,
                        at_s,
                        store,
                        NULL,
                        reference,
                        f"积分抵现 {cents(pay_cents)} 元",
                        "{}",
                        NULL,
                    )
                )
                need = pay
                keep = []
                for lot in st.lots:
                    left = lot_rem[lot - 1]
                    if need and left:
                        part = min(left, need)
                        need -= part
                        lot_rem[lot - 1] = left - part
                        use_add((entry_id, lot, m, part))
                    if lot_rem[lot - 1]:
                        keep.append(lot)
                assert need == 0, "points spent beyond the open lots"
                st.lots = keep
            if earned:
                st.balance += earned
                st.earned += earned
                entry_id += 1
                entry_json = copy_escape(
                    '{"text": '
                    + enc_receipt
                    + ', "lines": ['
                    + ", ".join(lt[1] for lt in line_texts)
                    + "]}"
                )
                if pg:
                    entry_add(
                        f"{entry_id}\t{m}\tearn\t{earned}\t{st.balance}\t{at_s}\t{store}\t\\N"
                        f"\t{reference}\t{label}\t{entry_json}\t\\N"
                    )
                else:
                    entry_add(
                        (
                            entry_id,
                            m,
                            "earn",
                            earned,
                            st.balance,
                            at_s,
                            store,
                            None,
                            reference,
                            label,
                            entry_json,
                            None,
                        )
                    )
                exp = exp_cache.get(lday)
                if exp is None:
                    e = lot_expires_on(policy, epoch + dt.timedelta(days=lday), months=months_n)
                    exp = exp_cache[lday] = (e - epoch).days if e else 0
                lot_member.append(m)
                lot_entry.append(entry_id)
                lot_ts.append(t)
                lot_exp.append(exp)
                lot_orig.append(earned)
                lot_rem.append(earned)
                st.lots.append(len(lot_member))
                if exp:
                    expiring.setdefault(exp, set()).add(m)
            if st.balance != balance_after:
                raise AssertionError("balance drift")
            st.updated = t
            # _stats_add
            month = ymd[:7]
            mv = st.months.get(month)
            if mv is None:
                st.months[month] = [1, net]
            else:
                mv[0] += 1
                mv[1] += net
            st.visits += 1
            if not st.first or t < st.first:
                st.first = t
            if t >= st.last:
                st.last = t
                st.last_store = store
            st.spend += net
            year = int(ymd[:4])
            after = st.year_spend.get(year, 0) + net
            st.year_spend[year] = after
            for benefit, threshold in benefits:
                if after - net < threshold <= after:
                    self.crossings.append((benefit, m, t, year))
            digest = blake2b(b"%d:%d" % (seed, sale_id), digest_size=48).hexdigest()
            idem_add(
                (
                    "pos",
                    digest[:32],
                    "sale",
                    digest[32:],
                    201,
                    f'{{"sale_id": {sale_id}, "receipt_no": "{receipt_no}"}}',
                    at_s,
                )
            )
            if not n_sale & 0xFFFF:
                now = time.perf_counter()
                if now - last_log > 30:
                    last_log = now
                    self.log(
                        f"  … {n_sale + 1:,}/{total:,} receipts, {line_count:,} lines "
                        f"({now - t0:.0f} s)"
                    )
        # The expiry job up to the end of the window (the day of the build included).
        while job_day < (self.end_ts + offset) // DAY:
            job_day += 1
            expire(job_day)
        self.counts.update(
            sales=sale_id,
            sale_lines=line_count,
            discounts=discount_count,
            points_entries=entry_id,
            points_pay_receipts=pays,
            engine_checks=checks,
        )
        assert line_count == self.sale_lines, (line_count, self.sale_lines)

    def _check(
        self,
        d_index: int,
        lines: list,
        kind: str,
        pay: int,
        pay_cents: int,
        nets: list[int],
        shares: list[int],
        line_points: list[int],
        texts: list[str],
        receipt_text: str,
        earned: int,
    ) -> None:
        """Price and earn the receipt again with the real engines: it must come out the same."""
        from decimal import Decimal

        from carecard.checkout.engine import Line, price_basket
        from carecard.loyalty.earning import Tender, allocate_tenders, earn_points

        day = self.days[d_index]
        priced = price_basket(
            [Line(self.items[self.products[p][0]], q) for p, q, _c in lines],
            self.pricing_member,
            self.rules,
            [],
            self.policy,
            day,
        )
        net = sum(nets)
        tenders = []
        if pay:
            tenders.append(Tender("points", Decimal(pay_cents).scaleb(-2)))
        if net - pay_cents > 0 or not pay:
            tenders.append(Tender(kind, Decimal(net - pay_cents).scaleb(-2)))
        earning = earn_points(priced, tenders, self.rule, self.pricing_member, day)
        alloc = allocate_tenders(priced, tenders, self.rule)
        dclass = self.day_class[d_index]
        mine = {
            "lines": [
                (
                    c[0],
                    c[1],
                    [(d[0], d[1], d[3], d[4], d[5]) for d in self._line(dclass, p, q)[2]],
                )
                for p, q, c in lines
            ],
            "points": line_points,
            "texts": texts,
            "receipt": receipt_text,
            "total": earned,
            "shares": [{"points": s} if s else {} for s in shares],
        }
        real = {
            "lines": [
                (
                    int(pl.original * 100),
                    int(pl.net * 100),
                    [
                        (d.kind, str(d.rule_id or ""), int(d.amount * 100), d.reason, d.funded_by)
                        for d in pl.discounts
                        if d.amount > 0
                    ],
                )
                for pl in priced.lines
            ],
            "points": [ln.points for ln in earning.lines],
            "texts": [ln.text for ln in earning.lines],
            "receipt": earning.text,
            "total": earning.total,
            "shares": [{k: int(v * 100) for k, v in a.items() if v > 0} for a in alloc],
        }
        if mine != real:
            raise SystemExit(
                f"history: the fast pricing differs from the engines on {day}:\n"
                f"  mine {mine}\n  real {real}"
            )

    def _finish_rows(self, sinks: dict[str, Any]) -> None:
        """Lots (their final remaining points), accounts and aggregates."""
        ts, NULL = self.ts, self.NULL
        lot_member, lot_entry, lot_ts, lot_exp, lot_orig, lot_rem = self.lots
        pending = self.program.pending_days * DAY
        epoch = dt.date(1970, 1, 1)
        add = sinks["loyalty_pointslot"].add
        exp_text: dict[int, str] = {}
        for i in range(len(lot_member)):
            t = lot_ts[i]
            e = lot_exp[i]
            if e and e not in exp_text:
                exp_text[e] = (epoch + dt.timedelta(days=e)).isoformat()
            add(
                (
                    i + 1,
                    lot_member[i],
                    lot_entry[i],
                    ts(t),
                    ts(t + pending),
                    exp_text[e] if e else NULL,
                    lot_orig[i],
                    lot_rem[i],
                )
            )
        acc_add = sinks["loyalty_pointsaccount"].add
        stats_add = sinks["checkout_memberstats"].add
        offset = self.offset
        for m in sorted(self.members_state):
            st = self.members_state[m]
            acc_add((m, st.balance, 0, st.earned, st.spent, st.expired, ts(st.updated)))
            keep = sorted(st.months)[-13:]
            months = {k: [st.months[k][0], cents(st.months[k][1])] for k in keep}
            last_local = dt.datetime.fromtimestamp(st.last + offset, dt.UTC)
            first_m = last_local.year * 12 + last_local.month - 1 - 11
            window = {f"{x // 12:04d}-{x % 12 + 1:02d}" for x in range(first_m, first_m + 12)}
            v12 = sum(st.months[k][0] for k in keep if k in window)
            s12 = sum(st.months[k][1] for k in keep if k in window)
            stats_add(
                (
                    m,
                    ts(st.first),
                    ts(st.last),
                    st.last_store,
                    st.visits,
                    cents(st.spend),
                    v12,
                    cents(s12),
                    self.json(months),
                )
            )
        self.counts.update(
            points_lots=len(lot_member),
            accounts=len(self.members_state),
            member_stats=len(self.members_state),
        )

    # -- database preparation ----------------------------------------------------------------
    def _pg_prepare(self, cur: Any) -> list[str]:
        """Empty the tables and drop what slows a bulk load; returns the DDL that restores it."""
        tables = list(TABLES)
        cur.execute(
            "SELECT DISTINCT c.conrelid::regclass::text FROM pg_constraint c WHERE c.contype = 'f'"
            " AND c.confrelid::regclass::text = ANY(%s)"
            " AND NOT c.conrelid::regclass::text = ANY(%s)",
            [tables, tables],
        )
        others = [r[0] for r in cur.fetchall()]
        for other in others:
            cur.execute(f"SELECT EXISTS (SELECT 1 FROM {other})")  # noqa: S608 — catalog name
            if cur.fetchone()[0]:
                raise SystemExit(f"history: {other} references the sales tables and is not empty")
        restore: list[str] = []
        drops: list[str] = []
        for table in tables:
            cur.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC",
                [table],
            )
            for name, definition in cur.fetchall():
                drops.append(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            cur.execute(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid"
                " WHERE x.indrelid = %s::regclass AND NOT x.indisprimary"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
                [table],
            )
            for name, definition in cur.fetchall():
                drops.append(f'DROP INDEX "{name}"')
                restore.insert(0, definition)
        # Spend-benefit vouchers of an earlier history or benchmark run go with it.
        cur.execute(
            "DELETE FROM coupons_couponevent WHERE coupon_id IN (SELECT id FROM coupons_coupon"
            " WHERE source_reference LIKE 'spend_benefit:%%')"
        )
        cur.execute("DELETE FROM coupons_coupon WHERE source_reference LIKE 'spend_benefit:%%'")
        cur.execute(f"TRUNCATE {', '.join(tables + others)} RESTART IDENTITY")
        for sql in drops:
            cur.execute(sql)
        return restore

    def _sqlite_prepare(self, cur: Any) -> list[str]:
        tables = list(TABLES)
        marks = ", ".join("?" * len(tables))
        cur.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"  # noqa: S608
            f" AND tbl_name IN ({marks})",
            tables,
        )
        indexes = cur.fetchall()
        cur.execute(
            "DELETE FROM coupons_couponevent WHERE coupon_id IN (SELECT id FROM coupons_coupon"
            " WHERE source_reference LIKE 'spend_benefit:%')"
        )
        cur.execute("DELETE FROM coupons_coupon WHERE source_reference LIKE 'spend_benefit:%'")
        for table in tables:
            cur.execute(f"DELETE FROM {table}")  # noqa: S608 — fixed names
        for name, _sql in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        return [sql for _name, sql in indexes]

    # -- build -------------------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        from django.db import transaction

        t0 = time.perf_counter()
        self._columns()
        self._config()
        self.log(
            f"  history {self.start} … {self.end - dt.timedelta(days=1)}: "
            f"planning {self.sale_lines:,} sale lines"
        )
        keys, mbits = self._plan()
        self.timings["plan_s"] = round(time.perf_counter() - t0, 1)
        self.log(f"  planned {len(keys):,} receipts ({self.timings['plan_s']} s)")
        pg = self.vendor == "postgresql"
        self.connection.ensure_connection()
        raw = self.connection.connection
        if not pg:
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute("PRAGMA synchronous=OFF")
            raw.execute("PRAGMA journal_mode=DELETE")
            raw.execute("PRAGMA cache_size=-1048576")
        t1 = time.perf_counter()
        with transaction.atomic():
            cur = raw.cursor()
            if pg:
                cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
                restore = self._pg_prepare(cur)
            else:
                restore = self._sqlite_prepare(cur)
            self._produce(keys, mbits)
            del keys
            self.timings["rows_s"] = round(time.perf_counter() - t1, 1)
            self.log(f"  rows written ({self.timings['rows_s']} s): {self.counts}")
            t2 = time.perf_counter()
            for sql in restore:
                cur.execute(sql)
            self.timings["indexes_constraints_s"] = round(time.perf_counter() - t2, 1)
            self.log(
                f"  {len(restore)} indexes and constraints rebuilt "
                f"({self.timings['indexes_constraints_s']} s)"
            )
            if pg:
                for table in (
                    "checkout_sale",
                    "checkout_saleline",
                    "loyalty_pointsentry",
                    "loyalty_pointslot",
                ):
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" GREATEST((SELECT max(id) FROM {table}), 1))"  # noqa: S608
                    )
            t3 = time.perf_counter()
            self._vouchers()
            self.timings["vouchers_s"] = round(time.perf_counter() - t3, 1)
        t4 = time.perf_counter()
        cur = raw.cursor()
        if pg:
            for table in TABLES:
                cur.execute(f"VACUUM ANALYZE {table}")
        else:
            for table in TABLES:
                cur.execute(f"PRAGMA foreign_key_check({table})")  # noqa: S608
                bad = cur.fetchall()
                if bad:
                    raise SystemExit(f"history: foreign keys broken in {table}: {bad[:5]}")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.timings["finish_s"] = round(time.perf_counter() - t4, 1)
        self.timings["total_s"] = round(time.perf_counter() - t0, 1)
        self.log(f"  history built: {self.timings}")
        return {
            "end": self.end.isoformat(),
            "counts": self.counts,
            "buyers": self.buyers,
            "timings": self.timings,
        }

    def _vouchers(self) -> None:
        """The yearly-spend vouchers the receipts crossed into. A template with a per-member
        limit goes through ``coupon_issue`` (quota lock and all, ~3 ms each); one without —
        the 王曲同心 health check — gets the rows ``coupon_issue`` writes for it
        (``_issue_many``: status issued, its validity window, source campaign, the
        ``spend_benefit:<id>:<year>`` reference, the template's campaign code, a fresh code)
        in one ``bulk_create``."""
        from carecard.coupons import rules
        from carecard.coupons import services as coupon_services
        from carecard.coupons.models import Coupon, CouponStatus
        from carecard.members.models import Member

        crossings = self.crossings
        members = Member.objects.only("id", "status").in_bulk({m for _b, m, _t, _y in crossings})
        taken = set(Coupon.objects.values_list("code", flat=True))
        rows = []
        for benefit, m, t, year in crossings:
            template = benefit.coupon_template
            at = dt.datetime.fromtimestamp(t, dt.UTC)
            reference = f"spend_benefit:{benefit.pk}:{year}"
            if template.per_member_limit or not members[m].is_live:
                coupon_services.coupon_issue(
                    template=template,
                    member=members[m],
                    at=at,
                    source="campaign",
                    reference=reference,
                )
                continue
            code = rules.generate_code()
            while code in taken:
                code = rules.generate_code()
            taken.add(code)
            valid_from, valid_until = rules.validity_window(
                (at + dt.timedelta(seconds=self.offset)).date(),
                valid_from=template.valid_from,
                valid_until=template.valid_until,
                valid_days=template.valid_days,
            )
            rows.append(
                Coupon(
                    template=template,
                    member_id=m,
                    code=code,
                    status=CouponStatus.ISSUED,
                    issued_at=at,
                    valid_from=valid_from,
                    valid_until=valid_until,
                    source="campaign",
                    source_reference=reference,
                    campaign_code=template.campaign_code,
                )
            )
        Coupon.objects.bulk_create(rows, batch_size=2000)
        self.counts["spend_vouchers"] = len(crossings)


# ----------------------------------------------------------------------------- verification
def verify(
    *, sample: int = 2000, seed: int = 0, ids: list[int] | None = None, app_ledger: bool = True
) -> dict[str, Any]:
    """Check the history's consistency on ``sample`` members who bought (or on ``ids``) and on
    their sales (SQL; any number but 0 in the result is a broken invariant):

    - points: ``verify_points`` — account balance = Σ entries = Σ open lots − debt (it sums the
      whole ledger: ~30 s at 10 M lines on SQLite; ``app_ledger=False`` checks the same for
      the sampled members only, in SQL);
    - every earn entry has its lot, with the same points; lot uses = original − remaining;
    - every sale: totals = Σ lines, Σ tenders = net, points earned = its earn entry;
    - every line: discount = Σ its discount rows, original − discount = net;
    - member aggregates: visits, spend, first and last purchase = their sales'.
    """
    from django.db import connection

    from carecard.loyalty.selectors import verify_points

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        if ids is None:
            cur.execute("SELECT max(member_id) FROM checkout_memberstats")
            top = cur.fetchone()[0]
            if not top:
                return {"members": 0}
            rng = random.Random(seed)
            cur.execute(
                "SELECT member_id FROM checkout_memberstats WHERE member_id IN ("
                + ", ".join(str(rng.randrange(1, top + 1)) for _ in range(sample * 4))
                + ")"
            )
            ids = [r[0] for r in cur.fetchall()][:sample]
        if not ids:
            return {"members": 0}
        in_ids = "(" + ", ".join(map(str, ids)) + ")"
        checks = {
            "sales_bad_totals": f"""
                SELECT count(*) FROM checkout_sale s
                WHERE s.member_id IN {in_ids} AND (
                    ABS(s.original_total - (SELECT SUM(l.original) FROM checkout_saleline l
                                            WHERE l.sale_id = s.id)) > 0.005
                    OR ABS(s.discount_total - (SELECT SUM(l.discount) FROM checkout_saleline l
                                               WHERE l.sale_id = s.id)) > 0.005
                    OR ABS(s.net_total - (SELECT SUM(l.net) FROM checkout_saleline l
                                          WHERE l.sale_id = s.id)) > 0.005
                    OR s.points_earned <> (SELECT SUM(l.points) FROM checkout_saleline l
                                           WHERE l.sale_id = s.id))
            """,
            "sales_bad_tenders": f"""
                SELECT count(*) FROM checkout_sale s
                WHERE s.member_id IN {in_ids} AND ABS(s.net_total - (
                    SELECT COALESCE(SUM(t.amount), 0) FROM checkout_saletender t
                    WHERE t.sale_id = s.id)) > 0.005
            """,
            "sales_bad_points": f"""
                SELECT count(*) FROM checkout_sale s
                WHERE s.member_id IN {in_ids} AND s.points_earned <> (
                    SELECT COALESCE(SUM(e.points), 0) FROM loyalty_pointsentry e
                    WHERE e.member_id = s.member_id AND e.kind = 'earn'
                      AND e.reference = 'sale:' || s.id)
            """,
            "lines_bad_discounts": f"""
                SELECT count(*) FROM checkout_sale s JOIN checkout_saleline l ON l.sale_id = s.id
                WHERE s.member_id IN {in_ids} AND (ABS(l.original - l.discount - l.net) > 0.005
                    OR ABS(l.discount - (SELECT COALESCE(SUM(d.amount), 0)
                                         FROM checkout_salediscount d WHERE d.line_id = l.id))
                       > 0.005)
            """,
            "earn_entries_without_lot": f"""
                SELECT count(*) FROM loyalty_pointsentry e
                LEFT JOIN loyalty_pointslot lot ON lot.entry_id = e.id
                WHERE e.member_id IN {in_ids} AND e.kind = 'earn'
                  AND (lot.id IS NULL OR lot.original <> e.points)
            """,
            "lots_bad_uses": f"""
                SELECT count(*) FROM loyalty_pointslot lot
                WHERE lot.member_id IN {in_ids} AND lot.original - lot.remaining <> (
                    SELECT COALESCE(SUM(u.points), 0) FROM loyalty_pointslotuse u
                    WHERE u.lot_id = lot.id)
            """,
            "stats_bad": f"""
                SELECT count(*) FROM checkout_memberstats st JOIN (
                    SELECT member_id, count(*) v, SUM(net_total) s, MIN(at) f, MAX(at) l
                    FROM checkout_sale WHERE member_id IN {in_ids} GROUP BY member_id
                ) x ON x.member_id = st.member_id
                WHERE st.visits <> x.v OR ABS(st.spend - x.s) > 0.005
                   OR st.first_purchase_at <> x.f OR st.last_purchase_at <> x.l
            """,
        }
        out: dict[str, Any] = {"members": len(ids)}
        for name, sql in checks.items():
            cur.execute(sql)
            out[name] = cur.fetchone()[0]
        if not app_ledger:
            cur.execute(f"""
                SELECT count(*) FROM loyalty_pointsaccount a
                WHERE a.member_id IN {in_ids} AND (
                    a.balance <> (SELECT COALESCE(SUM(e.points), 0)
                                  FROM loyalty_pointsentry e WHERE e.member_id = a.member_id)
                    OR a.balance <> (SELECT COALESCE(SUM(l.remaining), 0)
                                     FROM loyalty_pointslot l WHERE l.member_id = a.member_id)
                                    - a.debt)
            """)  # noqa: S608 — ids are ints
            out["points_mismatches"] = cur.fetchone()[0]
    if app_ledger:
        out["points_mismatches"] = len(verify_points(ids))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def consistent(result: dict[str, Any]) -> bool:
    return all(v == 0 for k, v in result.items() if k not in ("members", "seconds"))

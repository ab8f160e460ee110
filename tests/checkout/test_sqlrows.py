"""core.sqlrows: the sale path's rows go to the database exactly as the ORM would send them,
and its kept cursor follows the connection and query logging."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from carecard.checkout import services
from carecard.checkout.models import MemberStats, Sale, SaleDiscount, SaleLine, SaleTender
from carecard.checkout.services import LineIn
from carecard.core import sqlrows
from carecard.loyalty.models import PointsAccount, PointsEntry, PointsLot
from tests.checkout.test_commit import PLAIN_DAY, cash, commit
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal


def _full(obj):
    """What ``save`` sends for each inserted column."""
    conn = sqlrows.db()
    fields = sqlrows._insert_fields(type(obj))
    return [f.get_db_prep_save(f.pre_save(obj, True), conn) for f in fields]


def _differ(model, a, b):
    """The columns whose values differ in value or type: psycopg picks the parameter's SQL
    type from the Python type (Django wraps integers as Int2/Int4/Int8 on PostgreSQL)."""
    fields = sqlrows._insert_fields(model)
    return [
        (f.attname, x, y)
        for f, x, y in zip(fields, a, b, strict=True)
        # Jsonb wrappers compare by identity: compare what they wrap
        if (getattr(x, "obj", x) != getattr(y, "obj", y) or type(x) is not type(y))
        # stamped anew by each pre_save: both paths take the ORM's
        and not (getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))
    ]


def test_every_row_of_a_sale_is_prepared_as_the_orm_does(store, catalog, wangqu):
    member = make_member(store, name="王秀英")
    basket = [LineIn("P-VITC", 2), LineIn("P-COLD", 1), LineIn("P-SPEC", 3)]
    net = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=basket, at=PLAIN_DAY
    ).basket.net
    commit(store, member, basket, [cash(str(net))], key="rows")
    rows = [
        *Sale.objects.all(),
        *SaleLine.objects.all(),
        *SaleDiscount.objects.all(),
        *SaleTender.objects.all(),
        *PointsEntry.objects.all(),
        *PointsLot.objects.all(),
        *MemberStats.objects.all(),
    ]
    assert {type(r) for r in rows} == {
        Sale,
        SaleLine,
        SaleDiscount,
        SaleTender,
        PointsEntry,
        PointsLot,
        MemberStats,
    }
    conn = sqlrows.db()
    short = 0
    for row in rows:
        values = sqlrows._values(type(row), conn.vendor)
        assert _differ(type(row), values(row, conn), _full(row)) == []
        short += sum(1 for p in sqlrows._preparers(type(row), conn.vendor) if p[2] is not None)
    assert short > 40  # the shortcuts are really taken


def test_the_rows_a_sale_updates_are_prepared_as_save_does(store, catalog, wangqu):
    from carecard.checkout.services import _STATS_FIELDS

    member = make_member(store, name="周芷若")
    commit(store, member, [LineIn("P-VITC", 2)], [cash("78.40")], key="rows")
    conn = sqlrows.db()
    for obj, names in (
        (PointsAccount.objects.get(pk=member.pk), ("balance", "updated_at", "debt")),
        (MemberStats.objects.get(pk=member.pk), tuple(_STATS_FIELDS)),
    ):
        meta = type(obj)._meta
        fields = [meta.get_field(n) for n in names]
        full = [f.get_db_prep_save(f.pre_save(obj, False), conn) for f in fields]
        full.append(meta.pk.get_db_prep_save(obj.pk, conn))
        fast = sqlrows._update_values(type(obj), conn.vendor, names)(obj, conn)
        differ = [
            (name, x, y)
            for name, x, y in zip([*names, "pk"], fast, full, strict=True)
            if getattr(x, "obj", x) != getattr(y, "obj", y) or type(x) is not type(y)
            if name != "updated_at"  # auto_now: stamped anew by each pre_save
        ]
        assert differ == []


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (Sale, "points_earned", 7),
        (Sale, "points_balance", None),
        (Sale, "member_id", 12),
        (Sale, "receipt_no", "R-1"),
        (Sale, "offline", True),
        (Sale, "net_total", D("12.30")),
        (Sale, "business_date", dt.date(2026, 2, 25)),
        (Sale, "at", PLAIN_DAY),
        (Sale, "at", PLAIN_DAY.astimezone(dt.timezone(dt.timedelta(hours=8)))),
        (Sale, "explanation", {"text": "1 元 1 分"}),
        (PointsLot, "expires_on", None),
        (SaleTender, "amount", 5),  # not a Decimal: the full path
        (SaleLine, "quantity", True),  # a bool where an int belongs: the full path
    ],
)
def test_each_shortcut_matches_the_full_preparation(model, field, value):
    conn = sqlrows.db()
    obj = model(**{field: value})
    values = sqlrows._values(model, conn.vendor)
    assert _differ(model, values(obj, conn), _full(obj)) == []


@pytest.mark.django_db(transaction=True)
def test_the_kept_cursor_is_reused_and_renewed_with_the_connection():
    first = sqlrows.cursor()
    assert sqlrows.cursor() is first
    with CaptureQueriesContext(connection) as ctx:
        logged = sqlrows.cursor()
        logged.execute("SELECT 1")
    assert logged is not first
    assert len(ctx.captured_queries) == 1  # statements on the kept cursor are still counted
    connection.close()
    renewed = sqlrows.cursor()
    assert renewed is not first
    assert renewed is not logged
    renewed.execute("SELECT 1")
    assert renewed.fetchone()[0] == 1


def test_deferred_writes_go_out_before_the_next_statement(store, catalog, wangqu):
    member = make_member(store, name="李建国")
    commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="first")
    conn = sqlrows.db()
    pg = conn.vendor == "postgresql"
    with transaction.atomic(), sqlrows.deferred():
        account = PointsAccount.objects.get(pk=member.pk)
        account.balance += 5
        sqlrows.update(account, ["balance"])
        held = list(getattr(conn, "_sqlrows_pending", None) or [])
        # PostgreSQL holds the UPDATE; SQLite has no round trips to save and sends it at once.
        assert len(held) == (1 if pg else 0)
        # Any other statement sends what is held first, so it reads the new balance.
        assert PointsAccount.objects.get(pk=member.pk).balance == account.balance
        assert not getattr(conn, "_sqlrows_pending", None)
    assert getattr(conn, "_sqlrows_pending", None) is None


def test_a_failing_held_write_fails_the_block_as_a_django_error(store, catalog, wangqu):
    member = make_member(store, name="赵敏")
    first = commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="first")
    clash = sqlrows.new(
        Sale,
        id=first.sale.pk + 1000,
        receipt_no=first.sale.receipt_no,  # the store already has it
        kind="sale",
        member_id=member.pk,
        store_id=store.pk,
        at=first.sale.at,
        business_date=first.sale.business_date,
        original_total=D("1.00"),
        discount_total=D("0.00"),
        net_total=D("1.00"),
    )
    with pytest.raises(IntegrityError), transaction.atomic(), sqlrows.deferred():
        sqlrows.insert([clash])
    assert Sale.objects.count() == 1


def test_postgresql_prepares_the_statements_every_sale_repeats(store, catalog, wangqu):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite compiles and caches each statement in the client library itself")
    # Django hands psycopg no prepare threshold unless settings give one, and psycopg then
    # never prepares: PostgreSQL would parse and plan every statement of every sale again.
    member = make_member(store, name="孙小美")
    for i in range(10):
        commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key=f"sale-{i}")
    with connection.cursor() as cur:
        cur.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        prepared = cur.fetchall()
    lock = [runs for sql, runs in prepared if "FOR UPDATE" in sql]
    # The sale's writes, held and sent as one statement (sqlrows.flush).
    writes = [
        runs
        for sql, runs in prepared
        if 'INSERT INTO "checkout_sale"' in sql and 'UPDATE "loyalty_pointsaccount"' in sql
    ]
    assert max(lock, default=0) >= 2
    assert max(writes, default=0) >= 2


def test_held_writes_share_a_statement_only_where_none_needs_another():
    ins_sale = ('INSERT INTO "checkout_sale" ("id") VALUES (%s)', [1])
    ins_line = ('INSERT INTO "checkout_saleline" ("id") VALUES (%s), (%s)', [1, 2])
    upd_account = (
        'UPDATE "loyalty_pointsaccount" SET "balance" = %s WHERE "member_id" = %s',
        [5, 1],
    )
    ins_key = ("INSERT INTO core_idempotencyrecord (scope) VALUES (%s)", ["s"])
    # A sale's writes: inserts and one update of a table nothing else writes — one statement.
    assert sqlrows._batches([ins_sale, ins_line, upd_account, ins_key]) == [
        [ins_sale, ins_line, upd_account, ins_key]
    ]
    # A second update of the same table must see the first: the run is cut before it.
    assert sqlrows._batches([ins_sale, upd_account, upd_account]) == [
        [ins_sale, upd_account],
        [upd_account],
    ]
    # An update of a table the run inserts into would not see the inserted rows.
    ins_account = ('INSERT INTO "loyalty_pointsaccount" ("member_id") VALUES (%s)', [1])
    assert sqlrows._batches([ins_account, upd_account]) == [[ins_account], [upd_account]]
    assert sqlrows._combined((ins_sale[0], ins_line[0]), True) == (
        'WITH w0 AS (INSERT INTO "checkout_sale" ("id") VALUES ($1)) '
        'INSERT INTO "checkout_saleline" ("id") VALUES ($2), ($3)'
    )


def test_two_held_updates_of_one_row_both_count(store, catalog, wangqu):
    member = make_member(store, name="钱夫人")
    commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="first")
    before = PointsAccount.objects.get(pk=member.pk).balance
    with transaction.atomic(), sqlrows.deferred():
        account = PointsAccount.objects.get(pk=member.pk)
        account.balance += 5
        sqlrows.update(account, ["balance"])
        account.lifetime_earned += 7
        sqlrows.update(account, ["lifetime_earned"])
    after = PointsAccount.objects.get(pk=member.pk)
    assert after.balance == before + 5
    assert after.lifetime_earned == account.lifetime_earned

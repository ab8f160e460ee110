"""The counter end to end on the database: quote, commit (idempotent), return (C-1..C-6)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from carecard.checkout import services
from carecard.checkout.models import MemberStats, Sale, SaleDiscount, SaleLine, SaleTender
from carecard.checkout.services import LineIn, ReturnLineIn, TenderIn
from carecard.core.errors import Conflict, DomainError, ValidationFailed
from carecard.core.models import IdempotencyRecord
from carecard.loyalty.models import (
    PointsAccount,
    PointsEntry,
    ShortfallPolicy,
)
from carecard.loyalty.selectors import verify_points
from carecard.loyalty.services import program_get
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal
# 2026-02-24 is lunar 正月初八 (a 王曲同心 member day); 2026-02-25 is 初九.
MEMBER_DAY = dt.datetime(2026, 2, 24, 10, 0, tzinfo=dt.UTC)
PLAIN_DAY = dt.datetime(2026, 2, 25, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def member(store):
    return make_member(store, name="王秀英")


def commit(store, member, lines, tenders, key="k1", at=PLAIN_DAY, **kw):
    body = {
        "lines": [(ln.sku, ln.quantity) for ln in lines],
        "tenders": [(t.kind, str(t.amount), t.points) for t in tenders],
        "member": member.pk if member else None,
    }
    return services.sale_commit(
        scope="terminal:1",
        idempotency_key=key,
        body=body,
        store_id=store.pk,
        member_id=member.pk if member else None,
        lines=lines,
        tenders=tenders,
        at=at,
        **kw,
    )


def cash(amount):
    return TenderIn(kind="cash", amount=D(amount))


def test_member_day_price_receipt_and_points(store, member, catalog, wangqu):
    lines = [LineIn("P-COLD", 2), LineIn("P-SPEC", 1)]
    quote = services.sale_quote(store_id=store.pk, member_id=member.pk, lines=lines, at=MEMBER_DAY)
    assert quote.basket.net == D("57.50")  # 50 × 0.95 + 10 (special: no member discount)
    assert quote.earning.total == 47  # special-price items earn nothing
    result = commit(store, member, lines, [cash("57.50")], at=MEMBER_DAY)
    r = result.response
    assert [ln["net"] for ln in r["lines"]] == ["47.50", "10.00"]
    assert r["lines"][0]["discounts"][0]["reason"].startswith("会员日")
    assert (r["points_earned"], r["points_balance"]) == (47, 47)
    assert SaleDiscount.objects.get().amount == D("2.50")
    stats = MemberStats.objects.get(pk=member.pk)
    assert (stats.visits, stats.spend, stats.visits_12m, stats.spend_12m) == (
        1,
        D("57.50"),
        1,
        D("57.50"),
    )
    assert stats.last_store_id == store.pk
    assert verify_points() == []


def test_plain_day_is_98_percent(store, member, catalog, wangqu):
    result = commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")])
    assert result.response["net_total"] == "39.20"


def test_walk_in_pays_shelf_price_and_earns_nothing(store, catalog, wangqu):
    result = commit(store, None, [LineIn("P-VITC", 1)], [cash("40.00")])
    assert result.response["points_earned"] == 0
    assert result.sale.member_id is None


def test_replay_returns_the_first_answer_and_writes_nothing(store, member, catalog, wangqu):
    first = commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="same")
    again = commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="same")
    assert again.replayed
    assert again.response == first.response
    assert Sale.objects.count() == 1
    assert PointsAccount.objects.get(pk=member.pk).balance == 39
    with pytest.raises(Conflict) as exc:
        commit(store, member, [LineIn("P-VITC", 2)], [cash("78.40")], key="same")
    assert exc.value.code == "idempotency_key_reused"
    assert Sale.objects.count() == 1


@pytest.mark.parametrize(
    ("lines", "tenders", "field"),
    [
        ([LineIn("NOPE", 1)], [cash("1.00")], "lines[0].sku"),
        ([LineIn("P-VITC", 0)], [cash("1.00")], "lines[0].quantity"),
        ([LineIn("P-VITC", 1)], [cash("30.00")], "tenders"),
        ([LineIn("P-VITC", 1)], [TenderIn(kind="gold", amount=D("39.20"))], "tenders[0].kind"),
        ([LineIn("P-VITC", 1)], [TenderIn(kind="points", points=3920)], "tenders[0].points"),
        ([LineIn("P-VITC", 1)], [cash("39.201")], "tenders[0].amount"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    store, member, catalog, wangqu, lines, tenders, field
):
    with pytest.raises(DomainError) as exc:
        commit(store, member, lines, tenders)
    assert field in {e.field for e in exc.value.errors}
    assert not Sale.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert not PointsEntry.objects.exists()


def test_points_pay_part_and_earn_only_on_the_rest(store, member, catalog, wangqu):
    commit(store, member, [LineIn("P-VITC", 30)], [cash("1176.00")], key="a")  # earns 1176
    result = commit(
        store,
        member,
        [LineIn("P-VITC", 1)],
        [TenderIn(kind="points", points=1000), cash("29.20")],
        key="b",
    )
    assert result.response["points_spent"] == 1000
    assert result.response["points_earned"] == 29  # never on what points paid
    assert PointsAccount.objects.get(pk=member.pk).balance == 1176 - 1000 + 29


def test_insurance_paid_part_earns_nothing(store, member, catalog, wangqu):
    result = commit(
        store,
        member,
        [LineIn("P-RX", 1), LineIn("P-VITC", 1)],
        [TenderIn(kind="insurance_pool", amount=D("86.24")), cash("39.20")],
    )
    assert result.response["net_total"] == "125.44"
    assert result.response["points_earned"] == 39


def test_partial_then_full_return_reverses_points_and_refunds_exactly(
    store, member, catalog, wangqu
):
    sale = commit(store, member, [LineIn("P-COLD", 3)], [cash("73.50")]).sale  # 3 × 24.50
    assert sale.points_earned == 73
    first = services.sale_return(
        scope="terminal:1",
        idempotency_key="r1",
        body={"n": 1},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 1)],
        at=PLAIN_DAY + dt.timedelta(days=1),
    )
    assert first.response["net_total"] == "24.50"
    assert first.response["refund"]["points_reversed"] == 24
    assert first.response["refund"]["tenders"] == [{"kind": "cash", "amount": "24.50"}]
    with pytest.raises(ValidationFailed) as exc:
        services.sale_return(
            scope="terminal:1",
            idempotency_key="r2",
            body={"n": 2},
            sale_id=sale.pk,
            lines=[ReturnLineIn(1, 3)],
            at=PLAIN_DAY + dt.timedelta(days=1),
        )
    assert exc.value.errors[0].code == "exceeds_sold"
    rest = services.sale_return(
        scope="terminal:1",
        idempotency_key="r3",
        body={"n": 3},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 2)],
        at=PLAIN_DAY + dt.timedelta(days=2),
    )
    assert rest.response["net_total"] == "49.00"
    assert rest.response["refund"]["points_reversed"] == 49
    assert PointsAccount.objects.get(pk=member.pk).balance == 0
    assert SaleLine.objects.get(sale=sale).returned_quantity == 3
    assert MemberStats.objects.get(pk=member.pk).spend == D("0.00")
    assert verify_points() == []


def test_return_restores_points_spent_pro_rata(store, member, catalog, wangqu):
    commit(store, member, [LineIn("P-VITC", 60)], [cash("2352.00")], key="a")
    paid = commit(
        store,
        member,
        [LineIn("P-VITC", 2)],
        [TenderIn(kind="points", points=2000), cash("58.40")],
        key="b",
    ).sale
    ret = services.sale_return(
        scope="terminal:1",
        idempotency_key="r",
        body={},
        sale_id=paid.pk,
        lines=[ReturnLineIn(1, 1)],
        at=PLAIN_DAY,
    )
    refund = ret.response["refund"]
    assert refund["points_restored"] == 1000
    assert refund["tenders"] == [{"kind": "cash", "amount": "29.20"}]
    assert verify_points() == []


def test_return_of_spent_points_recovers_their_value(store, member, catalog, wangqu):
    program = program_get()
    program.shortfall_policy = ShortfallPolicy.RECOVER_VALUE
    program.save()
    sale = commit(store, member, [LineIn("P-VITC", 100)], [cash("3920.00")], key="a").sale
    commit(
        store,
        member,
        [LineIn("P-COLD", 2)],
        [TenderIn(kind="points", points=3000), cash("19.00")],
        key="b",
    )
    ret = services.sale_return(
        scope="terminal:1",
        idempotency_key="r",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 100)],
        at=PLAIN_DAY,
    )
    refund = ret.response["refund"]
    # 3920 earned, 3000 of them spent: 939 left to take back (920 + the 19 earned since); the
    # other 2981 points are recovered at 0.01 CNY each from the refund.
    assert refund["points_reversed"] == 939
    assert refund["recovered"] == "29.81"
    assert refund["money"] == "3890.19"
    assert PointsAccount.objects.get(pk=member.pk).balance == 0
    assert verify_points() == []


def test_return_refunds_by_the_tenders_that_paid_the_line(store, member, catalog, wangqu):
    sale = commit(
        store,
        member,
        [LineIn("P-RX", 1), LineIn("P-VITC", 1)],
        [TenderIn(kind="insurance_pool", amount=D("86.24")), cash("39.20")],
    ).sale
    vitc = services.sale_return(
        scope="terminal:1",
        idempotency_key="r1",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(2, 1)],
        at=PLAIN_DAY,
    ).response["refund"]
    assert vitc["tenders"] == [{"kind": "cash", "amount": "39.20"}]
    assert vitc["points_reversed"] == 39
    rx = services.sale_return(
        scope="terminal:1",
        idempotency_key="r2",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 1)],
        at=PLAIN_DAY,
    ).response["refund"]
    assert rx["tenders"] == [{"kind": "insurance_pool", "amount": "86.24"}]
    assert rx["points_reversed"] == 0
    assert verify_points() == []


def test_return_window(store, member, catalog, wangqu):
    sale = commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")]).sale
    with pytest.raises(DomainError) as exc:
        services.sale_return(
            scope="terminal:1",
            idempotency_key="late",
            body={},
            sale_id=sale.pk,
            lines=[ReturnLineIn(1, 1)],
            at=PLAIN_DAY + dt.timedelta(days=31),
        )
    assert exc.value.code == "return_window_passed"


def test_commit_runs_a_fixed_number_of_statements(store, member, catalog, wangqu):
    commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="warm")
    counts = []
    for n, key in ((1, "one"), (4, "four")):
        lines = [LineIn(sku, 1) for sku in ("P-VITC", "P-COLD", "P-SPEC", "P-RX")[:n]]
        net = services.sale_quote(
            store_id=store.pk, member_id=member.pk, lines=lines, at=PLAIN_DAY
        ).basket.net
        with CaptureQueriesContext(connection) as ctx:
            commit(store, member, lines, [cash(str(net))], key=key)
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    # The member; account and aggregates locked together; then sale, lines, discounts,
    # tenders, points entry + lot + account, aggregates and the key with the answer — one
    # statement on PostgreSQL (sqlrows.flush), one each on SQLite; and the test's
    # savepoint (2).
    assert counts[0] <= (5 if connection.vendor == "postgresql" else 13), counts
    assert SaleTender.objects.count() == 3


def test_quote_runs_one_statement(store, member, catalog, wangqu, django_assert_max_num_queries):
    commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="warm")
    lines = [LineIn(sku, 1) for sku in ("P-VITC", "P-COLD", "P-SPEC", "P-RX")]
    # The member with tier, account, aggregates and spendable points; products not yet kept
    # by the process come in one more statement, and then are kept like the rules.
    with django_assert_max_num_queries(2):
        services.sale_quote(store_id=store.pk, member_id=member.pk, lines=lines, at=PLAIN_DAY)
    with django_assert_max_num_queries(1):
        services.sale_quote(store_id=store.pk, member_id=member.pk, lines=lines, at=PLAIN_DAY)


def test_a_receipt_number_the_store_already_has_is_a_conflict_naming_the_field(
    store, member, catalog, wangqu
):
    commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="k1", receipt_no="POS-42")
    with pytest.raises(Conflict) as caught:
        commit(store, member, [LineIn("P-COLD", 1)], [cash("24.50")], key="k2", receipt_no="POS-42")
    assert caught.value.code == "receipt_taken"
    assert [(e.field, e.code) for e in caught.value.errors] == [("receipt_no", "duplicate")]
    assert Sale.objects.count() == 1
    assert PointsEntry.objects.count() == 1
    assert not IdempotencyRecord.objects.filter(key="k2").exists()


def test_a_drawn_receipt_number_that_clashes_is_drawn_again(
    store, member, catalog, wangqu, monkeypatch
):
    draws = iter(["AAAAAAAA", "AAAAAAAA", "BBBBBBBB"])
    monkeypatch.setattr(services.secrets, "token_hex", lambda n: next(draws))
    first = commit(store, member, [LineIn("P-VITC", 1)], [cash("39.20")], key="k1")
    second = commit(store, None, [LineIn("P-COLD", 1)], [cash("25.00")], key="k2")
    assert first.sale.receipt_no.endswith("-AAAAAAAA")
    assert second.sale.receipt_no.endswith("-BBBBBBBB")  # the clash rolled back and drew again
    assert second.sale.receipt_no[:-8] == first.sale.receipt_no[:-8]  # same store, same second
    assert Sale.objects.count() == 2


def test_a_return_whose_drawn_receipt_number_clashes_draws_again(
    store, member, catalog, wangqu, monkeypatch
):
    draws = iter(["AAAAAAAA", "AAAAAAAA", "BBBBBBBB"])
    monkeypatch.setattr(services.secrets, "token_hex", lambda n: next(draws))
    sale = commit(store, member, [LineIn("P-VITC", 2)], [cash("78.40")], key="k1").sale
    back = services.sale_return(
        scope="terminal:1",
        idempotency_key="r1",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 1)],
        at=sale.at,  # the same second as the sale: the same receipt-number prefix
    )
    assert sale.receipt_no.endswith("-AAAAAAAA")
    assert back.sale.receipt_no.endswith("-BBBBBBBB")  # the clash was undone and drawn again
    assert back.sale.receipt_no[:-8] == sale.receipt_no[:-8]
    assert Sale.objects.filter(kind="return").count() == 1
    assert back.response["refund"]["tenders"] == [{"kind": "cash", "amount": "39.20"}]
    assert verify_points() == []

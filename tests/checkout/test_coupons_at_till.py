"""Coupons at the till (V-3, C-1, C-6): priced by the engine, redeemed single-use in the
commit, refused with their field when unusable, given back by a full return."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carecard.checkout import services
from carecard.checkout.models import Sale
from carecard.checkout.services import LineIn, ReturnLineIn, TenderIn
from carecard.core.errors import ValidationFailed
from carecard.coupons import services as coupons
from carecard.coupons.models import Coupon, CouponStatus
from carecard.loyalty.selectors import verify_points
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal
AT = dt.datetime(2026, 2, 25, 10, 0, tzinfo=dt.UTC)  # a plain day under 王曲同心


@pytest.fixture
def member(store):
    return make_member(store, name="林雪")


@pytest.fixture
def coupon(member, store):
    template = coupons.coupon_template_create(
        name="满50减10", kind="amount_off", value=D("10.00"), min_spend=D("50.00"), valid_days=30
    )
    return coupons.coupon_issue(template=template, member=member, at=AT, source="manual")


def _commit(store, member, lines, cash, key, codes):
    return services.sale_commit(
        scope="t",
        idempotency_key=key,
        body={"k": key},
        store_id=store.pk,
        member_id=member.pk,
        lines=lines,
        tenders=[TenderIn(kind="cash", amount=D(cash))],
        at=AT,
        coupons=codes,
    )


def test_quote_applies_coupon_after_member_discount(store, member, catalog, wangqu, coupon):
    quote = services.sale_quote(
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-VITC", 2)],
        at=AT,
        coupons=[coupon.code],
    )
    assert quote.basket.net == D("68.40")  # 80 × 0.98 = 78.40, then 10 off
    assert quote.coupons_refused == []
    assert quote.earning.total == 68


def test_commit_redeems_once_and_refuses_reuse(store, member, catalog, wangqu, coupon):
    r = _commit(store, member, [LineIn("P-VITC", 2)], "68.40", "a", [coupon.code]).response
    assert r["coupons_used"] == [{"code": coupon.code, "amount": "10.00"}]
    coupon.refresh_from_db()
    assert (coupon.status, coupon.redeemed_reference) == (
        CouponStatus.REDEEMED,
        f"sale:{r['sale_id']}",
    )
    with pytest.raises(ValidationFailed) as exc:
        _commit(store, member, [LineIn("P-VITC", 2)], "68.40", "b", [coupon.code])
    assert exc.value.errors[0].field == "coupons[0]"
    assert exc.value.errors[0].code == "already_used"
    assert Sale.objects.count() == 1


def test_retry_after_the_coupon_was_used_replays_the_first_sale(
    store, member, catalog, wangqu, coupon
):
    # The till lost the answer and resends: its own coupon is used now, yet the retry must get
    # the first receipt, not a "coupon already used" error.
    first = _commit(store, member, [LineIn("P-VITC", 2)], "68.40", "a", [coupon.code])
    again = _commit(store, member, [LineIn("P-VITC", 2)], "68.40", "a", [coupon.code])
    assert again.replayed
    assert again.response == first.response
    assert Sale.objects.count() == 1


def test_commit_refuses_a_coupon_below_minimum_spend(store, member, catalog, wangqu, coupon):
    with pytest.raises(ValidationFailed) as exc:
        _commit(store, member, [LineIn("P-VITC", 1)], "29.20", "a", [coupon.code])
    assert exc.value.errors[0].code == "min_spend_not_met"
    assert not Sale.objects.exists()
    assert Coupon.objects.get(pk=coupon.pk).status == CouponStatus.ISSUED


def test_partial_return_keeps_the_coupon_full_return_gives_it_back(
    store, member, catalog, wangqu, coupon
):
    sale = _commit(store, member, [LineIn("P-VITC", 2)], "68.40", "a", [coupon.code]).sale
    first = services.sale_return(
        scope="t",
        idempotency_key="r1",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 1)],
        at=AT + dt.timedelta(days=1),
    ).response
    assert first["net_total"] == "34.20"  # half of the net after the coupon
    assert first["refund"]["coupons_restored"] == []
    rest = services.sale_return(
        scope="t",
        idempotency_key="r2",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 1)],
        at=AT + dt.timedelta(days=1),
    ).response
    assert rest["refund"]["coupons_restored"] == [coupon.code]
    assert Coupon.objects.get(pk=coupon.pk).status == CouponStatus.ISSUED
    assert verify_points() == []


def test_purchase_rule_issues_coupons_with_the_sale(store, member, catalog, wangqu):
    from carecard.coupons.models import PurchaseRule

    template = coupons.coupon_template_create(
        name="下次满50减5", kind="amount_off", value=D("5.00"), min_spend=D("50.00"), valid_days=30
    )
    PurchaseRule.objects.create(
        name="每满100送1张",
        template=template,
        min_amount=D("100.00"),
        repeat=True,
        max_per_receipt=3,
    )
    r = _commit(store, member, [LineIn("P-VITC", 6)], "235.20", "p", []).response
    assert len(r["coupons_issued"]) == 2
    assert set(Coupon.objects.filter(member=member).values_list("source_reference", flat=True)) == {
        f"sale:{r['sale_id']}"
    }

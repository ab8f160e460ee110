"""Merging duplicate members (M-2) after they have shopped: points, stored value, aggregates,
tier and coupons end up on the survivor and every ledger still balances."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carecard.checkout import services
from carecard.checkout.models import MemberStats, Sale
from carecard.checkout.presets import preset_load
from carecard.checkout.services import LineIn, TenderIn
from carecard.coupons import services as coupons
from carecard.coupons.models import Coupon, CouponQuota
from carecard.loyalty.models import MemberTier, PointsAccount
from carecard.loyalty.selectors import verify_points
from carecard.members import services as members
from carecard.wallet.models import WalletAccount
from carecard.wallet.selectors import verify_wallets
from carecard.wallet.services import wallet_topup
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal
AT = dt.datetime(2026, 3, 9, 10, tzinfo=dt.UTC)


def buy(store, member, qty, key, tenders=None):
    net = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=[LineIn("P-VITC", qty)], at=AT
    ).basket.net
    return services.sale_commit(
        scope="t",
        idempotency_key=key,
        body={"k": key},
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-VITC", qty)],
        tenders=tenders or [TenderIn(kind="cash", amount=net)],
        at=AT,
    )


def test_merge_combines_ledgers_aggregates_tier_and_coupons(store, catalog):
    preset_load("four_tier")
    survivor = make_member(store, name="周伯通", phone="13700000001")
    absorbed = make_member(store, name="周伯通", phone="13700000002")
    buy(store, survivor, 25, "s1")  # 1000 points
    buy(store, absorbed, 125, "a1")  # 5000 points: silver
    wallet_topup(member_id=survivor.pk, amount=D("100.00"), tender="cash", at=AT)
    wallet_topup(member_id=absorbed.pk, amount=D("50.00"), tender="cash", at=AT)
    template = coupons.coupon_template_create(
        name="限领一张", kind="amount_off", value=D("5.00"), valid_days=30, per_member_limit=1
    )
    coupons.coupon_issue(template=template, member=survivor, at=AT, source="manual")
    coupons.coupon_issue(template=template, member=absorbed, at=AT, source="manual")

    members.member_merge(actor=None, survivor=survivor, absorbed=absorbed)

    account = PointsAccount.objects.get(pk=survivor.pk)
    assert (account.balance, account.lifetime_earned) == (6000, 6000)
    assert not PointsAccount.objects.filter(pk=absorbed.pk).exists()
    assert WalletAccount.objects.get(pk=survivor.pk).balance == D("150.00")
    stats = MemberStats.objects.get(pk=survivor.pk)
    assert (stats.visits, stats.spend) == (2, D("6000.00"))
    assert MemberTier.objects.get(pk=survivor.pk).tier.code == "silver"
    assert Sale.objects.filter(member=survivor).count() == 2
    assert Coupon.objects.filter(member=survivor).count() == 2
    assert CouponQuota.objects.filter(member=survivor).count() == 1
    assert verify_points() == []
    assert verify_wallets() == []
    # The survivor keeps shopping on the combined account.
    r = buy(store, survivor, 1, "s2").response
    assert r["points_balance"] == 6000 + r["points_earned"]
    assert verify_points() == []

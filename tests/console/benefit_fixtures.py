"""Fixtures for coupons, stored value and rewards in the console: templates, a coupon issued to
the member, a stored-value bonus tier, a small redemption catalogue."""

from __future__ import annotations

from decimal import Decimal

import pytest

from carecard.coupons import services as coupon_services
from carecard.loyalty.models import Reward, RewardKind
from carecard.wallet import services as wallet_services
from carecard.wallet.models import TopupRule

D = Decimal


def make_template(**overrides):
    values = {
        "name": "满50减10",
        "kind": "amount_off",
        "value": D("10.00"),
        "min_spend": D("50.00"),
        "valid_days": 30,
    }
    values.update(overrides)
    return coupon_services.coupon_template_create(**values)


@pytest.fixture
def ten_off(db):
    """满50减10, valid 30 days from issue."""
    return make_template()


@pytest.fixture
def coupon(member, ten_off, frozen):
    """满50减10 issued to the member today (the frozen plain day)."""
    return coupon_services.coupon_issue(template=ten_off, member=member)


@pytest.fixture
def bonus_tier(db):
    return TopupRule.objects.create(name="充500送20", min_amount=D("500"), bonus=D("20"))


def topup(member, amount, *, store=None, tender="cash"):
    """Stored value paid in through the service, as the wallet page would."""
    return wallet_services.wallet_topup(
        member_id=member.pk,
        amount=D(amount),
        tender=tender,
        store_id=store.pk if store else None,
    )


@pytest.fixture
def voucher(db):
    """A points-funded ¥5 voucher template (what 100 points buy)."""
    return make_template(
        name="积分兑换5元券",
        value=D("5.00"),
        min_spend=D("0.00"),
        valid_days=90,
        points_funded=True,
        funded_by="points",
        stacking_group="points",
    )


@pytest.fixture
def catalogue(voucher):
    """100 points → ¥5 voucher; a gift with 1 left; a gift only in December."""
    return {
        "voucher": Reward.objects.create(
            name="5元抵用券", kind=RewardKind.COUPON, points=100, coupon_template=voucher
        ),
        "towel": Reward.objects.create(
            name="毛巾", kind=RewardKind.GIFT, points=50, stock=1, position=1
        ),
        "calendar": Reward.objects.create(
            name="新年台历", kind=RewardKind.GIFT, points=30, months=[12], position=2
        ),
    }

"""The redemption catalogue (P-4) and the presets' rewards: points for vouchers that then pay
at the till without earning points."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carecard.checkout import services
from carecard.checkout.presets import preset_load
from carecard.checkout.services import LineIn, TenderIn
from carecard.core.errors import DomainError
from carecard.coupons.models import CouponStatus
from carecard.loyalty.models import PointsAccount, Reward, RewardKind, RewardRedemption
from carecard.loyalty.rewards import reward_redeem
from carecard.loyalty.selectors import verify_points
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal
AT = dt.datetime(2026, 3, 7, 10, tzinfo=dt.UTC)  # a plain day under 王曲同心


def buy(store, member, qty, key, codes=(), cash=None):
    net = services.sale_quote(
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-VITC", qty)],
        at=AT,
        coupons=list(codes),
    ).basket.net
    return services.sale_commit(
        scope="t",
        idempotency_key=key,
        body={"k": key},
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-VITC", qty)],
        tenders=[TenderIn(kind="cash", amount=net)],
        at=AT,
        coupons=list(codes),
    )


@pytest.fixture
def member(store):
    return make_member(store, name="黄蓉")


def test_wangqu_every_100_points_a_5_yuan_voucher_rest_carries_over(store, member, catalog):
    preset_load("wangqu")
    buy(store, member, 6, "a")  # 6 × 39.20 = 235.20 → 235 points
    reward = Reward.objects.get(points=100)
    first = reward_redeem(member=member, reward=reward, store_id=store.pk, at=AT)
    reward_redeem(member=member, reward=reward, store_id=store.pk, at=AT)
    assert PointsAccount.objects.get(pk=member.pk).balance == 35  # the rest carries over
    with pytest.raises(DomainError) as exc:
        reward_redeem(member=member, reward=reward, store_id=store.pk, at=AT)
    assert exc.value.code == "insufficient_points"
    assert RewardRedemption.objects.count() == 2
    # The voucher pays 5 CNY at the till; that part earns no points.
    r = buy(store, member, 1, "b", codes=[first.coupon.code]).response
    assert r["net_total"] == "34.20"
    assert r["points_earned"] == 34
    first.coupon.refresh_from_db()
    assert first.coupon.status == CouponStatus.REDEEMED
    assert verify_points() == []


def test_four_tier_redemption_ladder(store, member, catalog):
    preset_load("four_tier")
    assert list(
        Reward.objects.order_by("points").values_list("points", "coupon_template__value")
    ) == [
        (500, D("10.00")),
        (1000, D("20.00")),
        (2000, D("50.00")),
        (5000, D("150.00")),
        (10000, D("400.00")),
    ]


def test_window_store_and_stock(store, other_store, member, catalog):
    preset_load("wangqu")
    buy(store, member, 10, "a")
    gift = Reward.objects.create(
        name="保温杯", kind=RewardKind.GIFT, points=50, stock=1, months=[3], store_ids=[store.pk]
    )
    with pytest.raises(DomainError) as exc:
        reward_redeem(member=member, reward=gift, store_id=other_store.pk, at=AT)
    assert exc.value.code == "store_not_allowed"
    with pytest.raises(DomainError) as exc:
        reward_redeem(member=member, reward=gift, store_id=store.pk, at=AT + dt.timedelta(days=30))
    assert exc.value.code == "outside_window"
    reward_redeem(member=member, reward=gift, store_id=store.pk, at=AT)
    with pytest.raises(DomainError) as exc:
        reward_redeem(member=member, reward=gift, store_id=store.pk, at=AT)
    assert exc.value.code == "out_of_stock"
    gift.refresh_from_db()
    assert gift.stock == 0
    assert PointsAccount.objects.get(pk=member.pk).balance == 392 - 50


def test_a_resent_redemption_replays_and_another_reward_under_its_key_is_a_409(
    store, member, catalog
):
    preset_load("wangqu")
    buy(store, member, 10, "a")  # 392 points
    gift = Reward.objects.create(name="保温杯", kind=RewardKind.GIFT, points=50, stock=1)
    towel = Reward.objects.create(name="毛巾", kind=RewardKind.GIFT, points=20, stock=5)
    first = reward_redeem(member=member, reward=gift, store_id=store.pk, at=AT, request_key="k1")
    # The form is sent again (double click, a lost answer): the last gift is not "out of
    # stock" for its own request, and nothing is spent twice.
    again = reward_redeem(member=member, reward=gift, store_id=store.pk, at=AT, request_key="k1")
    assert again.pk == first.pk
    assert RewardRedemption.objects.count() == 1
    assert PointsAccount.objects.get(pk=member.pk).balance == 392 - 50
    with pytest.raises(DomainError) as exc:
        reward_redeem(member=member, reward=towel, store_id=store.pk, at=AT, request_key="k1")
    assert exc.value.code == "idempotency_key_reused"
    assert Reward.objects.get(pk=towel.pk).stock == 5
    assert verify_points() == []

"""The three chains' published rules, loaded as presets, reproduce their examples (issue #3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carecard.checkout import services
from carecard.checkout.presets import PRESETS, preset_load
from carecard.checkout.services import LineIn, ReturnLineIn, TenderIn
from carecard.loyalty import services as points
from carecard.loyalty.locks import lock_account
from carecard.loyalty.models import MemberTier, PointsAccount, TierChange
from carecard.loyalty.selectors import verify_points
from carecard.members.models import MemberStatus
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal
TZ = dt.timezone(dt.timedelta(hours=8))


def at(y, m, d, h=10):
    return dt.datetime(y, m, d, h, tzinfo=TZ)


def buy(store, member, lines, when, key, tenders=None):
    net = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=lines, at=when
    ).basket.net
    return services.sale_commit(
        scope="t",
        idempotency_key=key,
        body={"k": key},
        store_id=store.pk,
        member_id=member.pk,
        lines=lines,
        tenders=tenders or [TenderIn(kind="cash", amount=net)],
        at=when,
    )


@pytest.fixture
def member(store):
    return make_member(store, name="陈晓梅", birthday="1975-06-15")


# --- 王曲同心 ---------------------------------------------------------------------------------


def test_wangqu_member_days_and_plain_days(store, member, catalog):
    preset_load("wangqu")
    # 2026-02-24 = 正月初八, 2026-03-07 = 正月十九 (plain), 2026-03-16 = 正月廿八
    for when, net in (
        (at(2026, 2, 24), "38.00"),
        (at(2026, 3, 7), "39.20"),
        (at(2026, 3, 16), "38.00"),
    ):
        quote = services.sale_quote(
            store_id=store.pk, member_id=member.pk, lines=[LineIn("P-VITC", 1)], at=when
        )
        assert quote.basket.net == D(net), when


def test_wangqu_special_items_no_discount_no_points(store, member, catalog):
    preset_load("wangqu")
    r = buy(store, member, [LineIn("P-SPEC", 3)], at(2026, 2, 24), "s").response
    assert (r["net_total"], r["points_earned"]) == ("30.00", 0)


def test_wangqu_points_expire_on_31_december(store, member, catalog):
    preset_load("wangqu")
    buy(store, member, [LineIn("P-VITC", 1)], at(2026, 3, 7), "a")
    assert points.points_expire_due(today=dt.date(2026, 12, 31)) == 0
    assert points.points_expire_due(today=dt.date(2027, 1, 1)) == 39
    assert PointsAccount.objects.get(pk=member.pk).balance == 0


def test_wangqu_card_after_one_purchase_of_20(store, catalog):
    preset_load("wangqu")
    pending = make_member(store, name="刘芳")
    pending.status = MemberStatus.PENDING
    pending.save(update_fields=["status"])
    small = buy(store, pending, [LineIn("P-SPEC", 1)], at(2026, 3, 7), "small").response
    assert small["member_activated"] is False
    first = buy(store, pending, [LineIn("P-COLD", 1)], at(2026, 3, 7), "first").response
    assert first["member_activated"] is True
    assert first["net_total"] == "25.00"  # the qualifying purchase is not yet a member's
    pending.refresh_from_db()
    assert pending.status == MemberStatus.ACTIVE
    second = buy(store, pending, [LineIn("P-COLD", 1)], at(2026, 3, 7), "second").response
    assert second["net_total"] == "24.50"


def test_wangqu_returns_adjust_points(store, member, catalog):
    preset_load("wangqu")
    sale = buy(store, member, [LineIn("P-VITC", 2)], at(2026, 3, 7), "a").sale
    services.sale_return(
        scope="t",
        idempotency_key="r",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 1)],
        at=at(2026, 3, 8),
    )
    assert PointsAccount.objects.get(pk=member.pk).balance == 78 - 39


# --- four-tier chain --------------------------------------------------------------------------


def test_four_tier_sunday_birthday_and_best_single(store, member, catalog):
    preset_load("four_tier")

    def quote(when):
        return services.sale_quote(
            store_id=store.pk, member_id=member.pk, lines=[LineIn("P-VITC", 1)], at=when
        ).basket.net

    assert quote(at(2026, 3, 8)) == D("34.00")  # Sunday 8.5折
    assert quote(at(2026, 3, 9)) == D("40.00")  # Monday, ordinary card: no discount
    assert quote(at(2026, 6, 15)) == D("32.00")  # birthday (a Monday) 8折
    spec = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=[LineIn("P-SPEC", 1)], at=at(2026, 3, 8)
    )
    assert spec.basket.net == D("10.00")  # special-price items excluded on Sundays


def test_four_tier_upgrade_at_once_and_tier_price(store, member, catalog):
    preset_load("four_tier")
    r = buy(store, member, [LineIn("P-VITC", 100)], at(2026, 3, 9), "a").response  # 4000 pts
    assert (r["points_earned"], r["tier"]) == (4000, "普通卡")
    r = buy(store, member, [LineIn("P-VITC", 25)], at(2026, 3, 10), "b").response  # 5000
    assert r["tier"] == "银卡"
    assert MemberTier.objects.get(pk=member.pk).tier.code == "silver"
    quote = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=[LineIn("P-VITC", 1)], at=at(2026, 3, 10)
    )
    assert quote.basket.net == D("35.20")  # silver 8.8折
    assert (quote.tier.next_tier.code, quote.tier.remaining) == ("gold", D("5000"))
    # Sunday 8.5折 beats silver 8.8折: the single best discount
    sunday = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=[LineIn("P-VITC", 1)], at=at(2026, 3, 15)
    )
    assert sunday.basket.net == D("34.00")
    assert TierChange.objects.filter(member=member).count() == 2


def test_four_tier_return_recovers_value_of_redeemed_points(store, member, catalog):
    preset_load("four_tier")
    sale = buy(store, member, [LineIn("P-VITC", 25)], at(2026, 3, 9), "a").sale  # 1000 points
    with __import__("django.db").db.transaction.atomic():
        points.points_spend(account=lock_account(member.pk), points=1000, at=at(2026, 3, 9, 12))
    ret = services.sale_return(
        scope="t",
        idempotency_key="r",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 25)],
        at=at(2026, 3, 10),
    ).response
    assert ret["refund"]["points_reversed"] == 0
    assert ret["refund"]["recovered"] == "10.00"  # 1000 points × 0.01
    assert ret["refund"]["money"] == "990.00"
    assert verify_points() == []


def test_four_tier_returns_only_within_30_days(store, member, catalog):
    preset_load("four_tier")
    sale = buy(store, member, [LineIn("P-VITC", 1)], at(2026, 3, 9), "a").sale
    with pytest.raises(Exception) as exc:  # noqa: PT011
        services.sale_return(
            scope="t",
            idempotency_key="r",
            body={},
            sale_id=sale.pk,
            lines=[ReturnLineIn(1, 1)],
            at=at(2026, 4, 9),
        )
    assert exc.value.code == "return_window_passed"


# --- rebate ladder ----------------------------------------------------------------------------


def test_rebate_ladder_earns_per_cny_but_not_on_voucher_payments(store, member, catalog):
    preset_load("rebate_ladder")
    r = buy(
        store,
        member,
        [LineIn("P-VITC", 1)],
        at(2026, 3, 9),
        "a",
        tenders=[
            TenderIn(kind="coupon", amount=D("20.00")),
            TenderIn(kind="cash", amount=D("20.00")),
        ],
    ).response
    assert r["points_earned"] == 20


def _voucher_names(member):
    from carecard.coupons.models import Coupon

    return list(
        Coupon.objects.filter(member=member).order_by("pk").values_list("template__name", flat=True)
    )


def test_rebate_ladder_rewards_at_2000_5000_10000_then_restarts(store, member, catalog):
    from carecard.loyalty.models import LadderProgress

    preset_load("rebate_ladder")
    r = buy(store, member, [LineIn("P-VITC", 50)], at(2026, 3, 9), "a").response  # 2000
    assert len(r["coupons_issued"]) == 1
    assert _voucher_names(member) == ["返利20元礼品券"]
    buy(store, member, [LineIn("P-VITC", 200)], at(2026, 3, 10), "b")  # 10000: 5000 and 10000
    assert _voucher_names(member) == ["返利20元礼品券", "返利50元券", "返利100元券"]
    progress = LadderProgress.objects.get(pk=member.pk)
    assert (progress.cycle_points, progress.cycles) == (0, 1)
    buy(store, member, [LineIn("P-VITC", 55)], at(2026, 3, 11), "c")  # 2200 into cycle two
    assert _voucher_names(member)[-1] == "返利20元礼品券"
    assert LadderProgress.objects.get(pk=member.pk).cycle_points == 2200
    # The vouchers are paid for with points: what they pay earns nothing.
    from carecard.coupons.models import Coupon

    code = Coupon.objects.filter(member=member, template__name="返利100元券").get().code
    r = services.sale_commit(
        scope="t",
        idempotency_key="d",
        body={"k": "d"},
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-VITC", 5)],
        tenders=[TenderIn(kind="cash", amount=D("100.00"))],
        at=at(2026, 3, 12),
        coupons=[code],
    ).response
    assert r["points_earned"] == 100  # on the 100 paid in cash, not on the voucher's 100


def test_rebate_ladder_twelve_cycles_in_a_year_give_the_500_bonus(store, member, catalog):
    preset_load("rebate_ladder")
    for month in range(1, 13):
        buy(store, member, [LineIn("P-VITC", 250)], at(2026, month, 5), f"m{month}")  # 10000 each
    names = _voucher_names(member)
    assert names.count("返利100元券") == 12
    assert names.count("返利阶梯年度奖励") == 1


def test_monthly_list_of_members_at_2000_points(store, member, catalog):
    from carecard.loyalty.ladder import members_at_least

    preset_load("rebate_ladder")
    other = make_member(store, name="小龙女")
    buy(store, member, [LineIn("P-VITC", 60)], at(2026, 3, 9), "a")  # 2400
    buy(store, other, [LineIn("P-VITC", 10)], at(2026, 3, 9), "b")  # 400
    assert members_at_least(2000, month=dt.date(2026, 3, 1)) == [(member.pk, 2400)]
    assert members_at_least(2000, month=dt.date(2026, 4, 1)) == []


def test_every_preset_loads_twice_without_duplicates_and_each_load_is_audited(db):
    from carecard.core.models import AuditAction, AuditEntry

    for key in PRESETS:
        preset_load(key)
        preset_load(key)
    loads = AuditEntry.objects.filter(action=AuditAction.SETTINGS, target__startswith="preset:")
    assert sorted(loads.values_list("target", flat=True)) == sorted(
        f"preset:{key}" for key in PRESETS for _ in range(2)
    )


def test_wangqu_yearly_spend_of_5000_gives_a_free_health_check(store, member, catalog):
    from carecard.coupons.models import Coupon

    preset_load("wangqu")
    buy(store, member, [LineIn("P-VITC", 100)], at(2026, 3, 7), "a")  # 3920.00
    assert not Coupon.objects.filter(member=member).exists()
    r = buy(store, member, [LineIn("P-VITC", 30)], at(2026, 4, 7), "b").response  # 5096.00
    assert len(r["coupons_issued"]) == 1
    assert Coupon.objects.get(member=member).template.name == "免费体检券"
    r = buy(store, member, [LineIn("P-VITC", 30)], at(2026, 5, 7), "c").response
    assert r["coupons_issued"] == []  # once a year
    r = buy(store, member, [LineIn("P-VITC", 130)], at(2027, 1, 7), "d").response
    assert len(r["coupons_issued"]) == 1  # a new year

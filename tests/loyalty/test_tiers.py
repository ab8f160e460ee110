"""Tiers (T-1, T-2): upgrade at once, downgrade only at the review after a grace period."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from carecard.checkout.models import MemberStats
from carecard.checkout.tasks import expire_points, review_tiers
from carecard.loyalty.models import MemberTier, Tier, TierChange
from carecard.loyalty.tiers import Measures, earned_tier, tier_evaluate, tier_purchase
from tests.factories import make_member

pytestmark = pytest.mark.django_db

D = Decimal
NOW = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)


@pytest.fixture
def tiers(db):
    return {
        t.code: t
        for t in (
            Tier.objects.create(code="normal", name="普通", rank=0, basis="spend", threshold=D(0)),
            Tier.objects.create(
                code="silver",
                name="银卡",
                rank=1,
                basis="spend",
                threshold=D(1000),
                window_months=12,
            ),
            Tier.objects.create(
                code="gold",
                name="金卡",
                rank=2,
                basis="spend",
                threshold=D(5000),
                window_months=12,
            ),
            Tier.objects.create(
                code="vip",
                name="付费金卡",
                rank=3,
                basis="spend",
                threshold=D(0),
                fee=D(1000),
            ),
        )
    }


def test_earned_tier_is_the_highest_reached_and_never_a_paid_one(tiers):
    all_tiers = list(tiers.values())
    assert earned_tier(all_tiers, Measures(spend_12m=D(999))).code == "normal"
    assert earned_tier(all_tiers, Measures(spend_12m=D(1000))).code == "silver"
    assert earned_tier(all_tiers, Measures(spend_12m=D(99999))).code == "gold"


def test_upgrade_at_once_never_down_on_evaluation(store, tiers):
    member = make_member(store)
    tier_evaluate(member_id=member.pk, measures=Measures(spend_12m=D(10)), at=NOW)
    assert MemberTier.objects.get(pk=member.pk).tier.code == "normal"
    tier_evaluate(member_id=member.pk, measures=Measures(spend_12m=D(6000)), at=NOW)
    assert MemberTier.objects.get(pk=member.pk).tier.code == "gold"
    tier_evaluate(member_id=member.pk, measures=Measures(spend_12m=D(0)), at=NOW)
    assert MemberTier.objects.get(pk=member.pk).tier.code == "gold"
    assert list(
        TierChange.objects.filter(member=member)
        .order_by("pk")
        .values_list("to_tier__code", flat=True)
    ) == ["normal", "gold"]


def test_review_grants_grace_then_downgrades_to_the_earned_tier(store, tiers):
    member = make_member(store)
    tier_evaluate(member_id=member.pk, measures=Measures(spend_12m=D(6000)), at=NOW)
    MemberStats.objects.create(member=member, spend=D(6000), spend_12m=D(1500), visits=3)
    review_tiers.call("2027-03-01")
    state = MemberTier.objects.get(pk=member.pk)
    assert (state.tier.code, state.grace_until) == ("gold", dt.date(2027, 5, 30))
    assert review_tiers.call("2027-03-02") == {"graced": 0, "downgraded": 0}
    review_tiers.call("2027-05-31")
    state.refresh_from_db()
    assert (state.tier.code, state.grace_until) == ("silver", None)


def test_requalifying_in_grace_keeps_the_tier(store, tiers):
    member = make_member(store)
    tier_evaluate(member_id=member.pk, measures=Measures(spend_12m=D(6000)), at=NOW)
    MemberStats.objects.create(member=member, spend_12m=D(10))
    review_tiers.call("2027-03-01")
    tier_evaluate(member_id=member.pk, measures=Measures(spend_12m=D(5200)), at=NOW)
    assert MemberTier.objects.get(pk=member.pk).grace_until is None


def test_paid_tier_for_its_term_then_back_to_earned(store, tiers):
    member = make_member(store)
    state = tier_purchase(member=member, tier=tiers["vip"], at=NOW)
    assert (state.tier.code, state.paid_until) == ("vip", dt.date(2027, 3, 1))
    assert review_tiers.call("2027-02-01") == {"graced": 0, "downgraded": 0}
    MemberStats.objects.create(member=member, spend_12m=D(1200))
    review_tiers.call("2027-03-02")
    state.refresh_from_db()
    assert (state.tier.code, state.paid_until) == ("silver", None)


def test_expiry_task_runs(store):
    assert expire_points.call(timezone.localdate().isoformat()) == {"expired": 0, "reminders": 0}

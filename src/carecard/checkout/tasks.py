"""Scheduled jobs of the counter's ledgers: points expiry and the tier review.

Both are idempotent per day, so running them twice (a retried cron, two workers) changes
nothing. ``carecard daily`` enqueues them; the worker (``carecard worker``) runs them.
"""

from __future__ import annotations

import datetime as dt

from django.tasks import task

from carecard.checkout.models import MemberStats
from carecard.loyalty import services as points
from carecard.loyalty.models import PointsAccount
from carecard.loyalty.tiers import Measures, tier_review

TIER_GRACE_DAYS = 90


def measures_for(member_ids: list[int]) -> dict[int, Measures]:
    """Tier measures of many members in two queries."""
    earned = dict(
        PointsAccount.objects.filter(pk__in=member_ids).values_list("pk", "lifetime_earned")
    )
    out = {}
    for stats in MemberStats.objects.filter(pk__in=member_ids):
        out[stats.pk] = Measures(
            points=earned.get(stats.pk, 0),
            spend=stats.spend,
            spend_12m=stats.spend_12m,
            visits=stats.visits,
            visits_12m=stats.visits_12m,
        )
    for member_id in member_ids:
        out.setdefault(member_id, Measures(points=earned.get(member_id, 0)))
    return out


@task()
def expire_points(today: str) -> dict[str, int]:
    """Expire every lot past its last day and queue the reminders of points expiring within
    the program's reminder days (P-3). ``today``: ISO date."""
    day = dt.date.fromisoformat(today)
    return {
        "expired": points.points_expire_due(today=day),
        "reminders": points.points_queue_reminders(today=day),
    }


@task()
def review_tiers(today: str) -> dict[str, int]:
    """The periodic tier review (T-1) with the chain's grace period."""
    return tier_review(
        today=dt.date.fromisoformat(today), grace_days=TIER_GRACE_DAYS, measures_for=measures_for
    )

"""The rebate ladder (返利阶梯): rewards at points thresholds within a cycle that restarts, and a
yearly bonus after a number of completed cycles. Runs inside the sale's transaction, with the
member's points account locked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from carecard.coupons import services as coupon_services
from carecard.coupons.models import Coupon, CouponSource, CouponTemplate
from carecard.loyalty.models import EntryKind, LadderProgress, LadderStep, PointsEntry

YEARLY_CYCLES = 12  # twelve completed cycles in a year earn the yearly bonus
YEARLY_BONUS_TEMPLATE = "返利阶梯年度奖励"


def ladder_advance(
    *, member: Any, points: int, at: dt.datetime, reference: str, actor: Any = None
) -> list[Coupon]:
    """Add ``points`` just earned to the member's cycle; issue the rewards of every step they
    cross, close the cycle at the top step (the rest carries into the next) and give the
    yearly bonus at the twelfth cycle of the year. Returns the coupons issued."""
    steps = list(LadderStep.objects.select_related("coupon_template").order_by("threshold"))
    if not steps or points <= 0:
        return []
    top = steps[-1].threshold
    year = timezone.localtime(at).year
    progress, _created = LadderProgress.objects.select_for_update().get_or_create(member=member)
    if progress.year != year:
        progress.year, progress.cycles = year, 0
    issued: list[Coupon] = []
    left = points
    while left > 0:
        before = progress.cycle_points
        after = min(top, before + left)
        left -= after - before
        for step in steps:
            if before < step.threshold <= after:
                issued.append(
                    coupon_services.coupon_issue(
                        template=step.coupon_template,
                        member=member,
                        at=at,
                        source=CouponSource.CAMPAIGN,
                        reference=f"ladder:{step.threshold}:{reference}",
                        actor=actor,
                    )
                )
        progress.cycle_points = after
        if after == top:
            progress.cycle_points = 0
            progress.cycles += 1
            if progress.cycles == YEARLY_CYCLES:
                bonus = CouponTemplate.objects.filter(name=YEARLY_BONUS_TEMPLATE).first()
                if bonus is not None:
                    issued.append(
                        coupon_services.coupon_issue(
                            template=bonus,
                            member=member,
                            at=at,
                            source=CouponSource.CAMPAIGN,
                            reference=f"ladder:year:{year}",
                            actor=actor,
                        )
                    )
    progress.save()
    return issued


def ladder_retreat(*, member_id: int, points: int) -> None:
    """A return takes its points back out of the current cycle (never below zero); rewards
    already given stay given."""
    progress = LadderProgress.objects.select_for_update().filter(pk=member_id).first()
    if progress is not None and points > 0:
        progress.cycle_points = max(0, progress.cycle_points - points)
        progress.save(update_fields=["cycle_points"])


def members_at_least(points: int, *, month: dt.date) -> list[tuple[int, int]]:
    """The monthly list (罗欣): members who earned at least ``points`` in ``month``, with their
    points, most first."""
    start = month.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    rows = (
        PointsEntry.objects.filter(
            kind__in=(EntryKind.EARN, EntryKind.BONUS), at__date__gte=start, at__date__lt=end
        )
        .values("member_id")
        .annotate(total=Sum("points"))
        .filter(total__gte=points)
        .order_by("-total", "member_id")
    )
    return [(r["member_id"], r["total"]) for r in rows]

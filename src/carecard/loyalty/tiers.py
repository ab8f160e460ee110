"""Member tiers (T-1..T-3): upgrade at once, downgrade only at the review after a grace period,
paid tiers for a term.

The measures a tier is judged on (points earned, spend, visits) come from the caller: spend and
visits are checkout's aggregates, and loyalty does not import checkout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.core.errors import FieldError, ValidationFailed
from carecard.loyalty.expiry import add_months
from carecard.loyalty.models import MemberTier, PointsEntry, Tier, TierBasis, TierChange
from carecard.members.models import Member

ZERO = Decimal("0")


@dataclass(frozen=True)
class Measures:
    """What a member has done: lifetime and last-12-month figures."""

    points: int = 0
    points_12m: int | None = None  # None: computed from the ledger when a tier needs it
    spend: Decimal = ZERO
    spend_12m: Decimal = ZERO
    visits: int = 0
    visits_12m: int = 0

    def value(self, basis: str, window_months: int | None) -> Decimal:
        windowed = window_months is not None
        if basis == TierBasis.POINTS:
            return Decimal((self.points_12m or 0) if windowed else self.points)
        if basis == TierBasis.SPEND:
            return self.spend_12m if windowed else self.spend
        return Decimal(self.visits_12m if windowed else self.visits)


def earned_tier(tiers: Iterable[Tier], measures: Measures) -> Tier | None:
    """The highest earnable (unpaid) tier whose threshold the measures reach. Pure."""
    best = None
    for tier in tiers:
        if tier.fee is not None:
            continue
        if measures.value(tier.basis, tier.window_months) >= tier.threshold and (
            best is None or tier.rank > best.rank
        ):
            best = tier
    return best


@dataclass(frozen=True)
class Progress:
    tier: Tier | None
    next_tier: Tier | None
    measure: Decimal
    remaining: Decimal  # to the next tier, in the next tier's basis


def tier_progress(current: Tier | None, tiers: list[Tier], measures: Measures) -> Progress:
    """The member's tier and how far the next earnable tier is (shown at the counter, C-1)."""
    rank = current.rank if current else -1
    higher = [t for t in tiers if t.rank > rank and t.fee is None]
    nxt = min(higher, key=lambda t: t.rank) if higher else None
    if nxt is None:
        return Progress(current, None, ZERO, ZERO)
    value = measures.value(nxt.basis, nxt.window_months)
    return Progress(current, nxt, value, max(ZERO, nxt.threshold - value))


def points_12m(member_id: int, at: dt.datetime) -> int:
    since = at - dt.timedelta(days=365)
    return sum(
        PointsEntry.objects.filter(
            member_id=member_id, kind__in=("earn", "bonus"), at__gte=since
        ).values_list("points", flat=True)
    )


def _change(
    member_id: int, state: MemberTier | None, tier: Tier, at: dt.datetime, reason: str
) -> MemberTier:
    TierChange.objects.create(
        member_id=member_id,
        from_tier=state.tier if state else None,
        to_tier=tier,
        at=at,
        reason=reason,
    )
    if state is None:
        return MemberTier.objects.create(member_id=member_id, tier=tier, since=at)
    state.tier, state.since, state.grace_until = tier, at, None
    state.save(update_fields=["tier", "since", "grace_until", "paid_until"])
    return state


def tier_evaluate(
    *, member_id: int, measures: Measures, at: dt.datetime, tiers: list[Tier] | None = None
) -> MemberTier | None:
    """Move the member up at once when the measures reach a higher tier (never down here).
    Call inside the transaction that changed the measures, with the member's account locked."""
    tiers = list(Tier.objects.all()) if tiers is None else tiers
    if not tiers:
        return None
    if measures.points_12m is None and any(
        t.basis == TierBasis.POINTS and t.window_months for t in tiers
    ):
        measures = replace(measures, points_12m=points_12m(member_id, at))
    state = MemberTier.objects.select_related("tier").filter(pk=member_id).first()
    target = earned_tier(tiers, measures) or min(tiers, key=lambda t: t.rank)
    if state is None:
        return _change(member_id, None, target, at, _("入会"))
    if target.rank > state.tier.rank:
        return _change(member_id, state, target, at, _("达到升级门槛"))
    if state.grace_until is not None and earned_tier(tiers, measures) == state.tier:
        state.grace_until = None  # requalified during the grace period
        state.save(update_fields=["grace_until"])
    return state


def tier_purchase(*, member: Member, tier: Tier, at: dt.datetime | None = None) -> MemberTier:
    """Buy a paid tier (T-2) for its term; the fee is taken at the till like any sale."""
    if tier.fee is None:
        raise ValidationFailed([FieldError("tier", "not_paid", _("该等级不是付费等级"))])
    at = at or timezone.now()
    with transaction.atomic():
        state = (
            MemberTier.objects.select_for_update()
            .select_related("tier")
            .filter(pk=member.pk)
            .first()
        )
        state = _change(member.pk, state, tier, at, _("购买付费等级"))
        start = max(timezone.localdate(at), state.paid_until or timezone.localdate(at))
        state.paid_until = add_months(start, tier.paid_months)
        state.save(update_fields=["paid_until"])
    return state


def tier_review(
    *,
    today: dt.date,
    grace_days: int,
    measures_for: Callable[[list[int]], dict[int, Measures]],
    batch: int = 500,
) -> dict[str, int]:
    """The periodic review (T-1): members below their tier's threshold get ``grace_days`` to
    requalify, then move down to the tier they earn; a paid tier ends at its term. Idempotent
    for a given day."""
    tiers = list(Tier.objects.all())
    if not tiers:
        return {"graced": 0, "downgraded": 0}
    entry = min(tiers, key=lambda t: t.rank)
    at = timezone.now()
    graced = downgraded = 0
    last = 0
    while True:
        states = list(
            MemberTier.objects.select_related("tier")
            .filter(pk__gt=last)
            .exclude(tier=entry)
            .order_by("pk")[:batch]
        )
        if not states:
            return {"graced": graced, "downgraded": downgraded}
        last = states[-1].pk
        measures = measures_for([s.pk for s in states])
        for state in states:
            if state.paid_until is not None and state.paid_until >= today:
                continue
            earned = earned_tier(tiers, measures.get(state.pk, Measures())) or entry
            if earned.rank >= state.tier.rank and state.paid_until is None:
                continue
            with transaction.atomic():
                if state.grace_until is None and state.paid_until is None:
                    state.grace_until = today + dt.timedelta(days=grace_days)
                    state.save(update_fields=["grace_until"])
                    graced += 1
                elif state.paid_until is not None or state.grace_until < today:
                    state.paid_until = None
                    _change(state.pk, state, earned, at, _("定期评级降级"))
                    downgraded += 1

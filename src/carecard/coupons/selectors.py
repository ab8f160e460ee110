"""Reads of coupons shared by the console, the member pages, the API and reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils import timezone

from carecard.core.money import ZERO
from carecard.coupons.models import Coupon, CouponEvent, CouponStatus
from carecard.coupons.rules import normalize_code


@dataclass(frozen=True)
class MemberCoupons:
    """A member's coupons as the member pages show them."""

    usable: list[Coupon] = field(default_factory=list)  # valid today, soonest expiry first
    upcoming: list[Coupon] = field(default_factory=list)  # not valid yet
    used: list[Coupon] = field(default_factory=list)  # latest first
    expired: list[Coupon] = field(default_factory=list)  # latest expiry first


def member_coupons(
    member_id: int, *, at: dt.datetime | None = None, limit: int = 50
) -> MemberCoupons:
    """The member's unused coupons (usable today / not yet valid), and the latest ``limit``
    used and expired ones. Void coupons are not shown. Three queries."""
    today = timezone.localdate(at or timezone.now())
    base = Coupon.objects.filter(member_id=member_id).select_related("template")
    result = MemberCoupons()
    lapsed: list[Coupon] = []
    for c in base.filter(status=CouponStatus.ISSUED).order_by("valid_until", "pk"):
        if c.valid_until < today:
            lapsed.append(c)  # the expiry job has not run yet
        elif c.valid_from > today:
            result.upcoming.append(c)
        else:
            result.usable.append(c)
    result.used.extend(
        base.filter(status=CouponStatus.REDEEMED).order_by("-redeemed_at", "-pk")[:limit]
    )
    expired = list(base.filter(status=CouponStatus.EXPIRED).order_by("-valid_until", "-pk")[:limit])
    result.expired.extend(
        sorted(lapsed + expired, key=lambda c: (c.valid_until, c.pk), reverse=True)[:limit]
    )
    return result


def coupon_by_code(code: str) -> Coupon | None:
    """One coupon by its code as typed (normalised), with template, member and trail."""
    clean = normalize_code(code)
    if not clean:
        return None
    return (
        Coupon.objects.filter(code=clean)
        .select_related("template", "member", "batch", "issued_store", "redeemed_store")
        .prefetch_related("events")
        .first()
    )


def coupon_events(coupon_id: int) -> list[CouponEvent]:
    """A coupon's trail in order."""
    return list(CouponEvent.objects.filter(coupon_id=coupon_id).order_by("at", "pk"))


def batch_codes(batch_id: int) -> list[str]:
    """The codes of a printed batch, in creation order (for the printer or an export)."""
    return list(
        Coupon.objects.filter(batch_id=batch_id).order_by("pk").values_list("code", flat=True)
    )


# Dimensions a cost report can group by → the column behind each.
COST_DIMENSIONS: dict[str, str] = {
    "funded_by": "template__funded_by",
    "campaign_code": "campaign_code",
    "source": "source",
    "template": "template_id",
    "issued_store": "issued_store_id",
    "redeemed_store": "redeemed_store_id",
}


@dataclass(frozen=True)
class CostRow:
    """Redeemed coupons of one group: how many and what they took off sales."""

    group: dict[str, object]
    count: int
    amount: Decimal


def coupon_cost_by_issuer(
    *,
    date_from: dt.date,
    date_to: dt.date,
    by: Sequence[str] = ("funded_by", "campaign_code", "source"),
) -> list[CostRow]:
    """What coupons cost (V-3): redeemed amounts of coupons used on the business dates
    ``date_from``..``date_to`` (inclusive), grouped by ``by`` (keys of ``COST_DIMENSIONS``),
    summed in SQL. Counts coupons that are redeemed now: a coupon a return gave back is not a
    cost (its trail keeps both events). Sorted by amount, largest first."""
    unknown = [d for d in by if d not in COST_DIMENSIONS]
    if unknown or not by:
        raise ValueError(f"unknown cost dimensions: {unknown}")
    start = timezone.make_aware(dt.datetime.combine(date_from, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min))
    columns = [COST_DIMENSIONS[d] for d in by]
    rows = (
        Coupon.objects.filter(
            status=CouponStatus.REDEEMED, redeemed_at__gte=start, redeemed_at__lt=end
        )
        .values(*columns)
        .annotate(n=Count("pk"), total=Sum("redeemed_amount"))
        .order_by(*columns)
    )
    out = [
        CostRow(
            group={d: row[c] for d, c in zip(by, columns, strict=True)},
            count=row["n"],
            amount=row["total"] or ZERO,
        )
        for row in rows
    ]
    out.sort(key=lambda r: -r.amount)
    return out

"""Reads for console pages that no other app needs: dashboard figures, HQ lists, audit log, and
the counter's and member page's views of coupons, stored value and the rewards catalogue.

Each list is built with a fixed number of queries (counts are correlated subqueries, not one
query per row), which the query-count tests pin down.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from carecard.chain.models import PosTerminal, Staff, Store, TradingZone
from carecard.core.models import AuditEntry
from carecard.coupons.models import Coupon, CouponStatus, CouponTemplate
from carecard.loyalty.models import Reward, RewardRedemption
from carecard.members.models import Member, MemberStatus
from carecard.wallet.models import EntryKind as WalletEntryKind
from carecard.wallet.models import WalletAccount, WalletEntry

LIVE = (MemberStatus.ACTIVE, MemberStatus.PENDING)


def scope_store_id(staff: Staff) -> int | None:
    """The store a staff member's lists are limited to; None for HQ roles (the whole chain)."""
    return None if staff.is_hq else staff.home_store_id


def _live_members(store_id: int | None) -> QuerySet[Member]:
    qs = Member.objects.filter(status__in=LIVE)
    if store_id is not None:
        qs = qs.filter(home_store_id=store_id)
    return qs


@dataclass
class Dashboard:
    total: int
    new_month: int
    new_today: int
    complete: int

    @property
    def complete_pct(self) -> int:
        return round(100 * self.complete / self.total) if self.total else 0


def dashboard(*, store_id: int | None, now: dt.datetime | None = None) -> Dashboard:
    """Member counts in scope: all live, new this month and today, complete profiles (M-7)."""
    local = timezone.localtime(now or timezone.now())
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    row = _live_members(store_id).aggregate(
        total=Count("pk"),
        new_month=Count("pk", filter=Q(enrolled_at__gte=month_start)),
        new_today=Count("pk", filter=Q(enrolled_at__gte=day_start)),
        complete=Count("pk", filter=Q(is_complete=True)),
    )
    return Dashboard(**row)


# Encrypted columns a list never shows: not loaded, so not decrypted row by row.
_LIST_DEFER = ("id_number", "allergies", "medical_history", "chronic_conditions")


def recent_members(*, store_id: int | None, limit: int = 10, offset: int = 0) -> list[Member]:
    return list(
        _live_members(store_id)
        .select_related("home_store")
        .defer(*_LIST_DEFER)
        .order_by("-enrolled_at", "-pk")[offset : offset + limit]
    )


def _count_subquery(qs: QuerySet[Any], outer: str) -> Coalesce:
    counted = (
        qs.filter(**{outer: OuterRef("pk")})
        .order_by()
        .values(outer)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def store_list() -> list[Store]:
    """Every store with its member, zone, household and staff totals."""
    households = (
        TradingZone.objects.filter(store_id=OuterRef("pk"))
        .order_by()
        .values("store_id")
        .annotate(n=Sum("households"))
        .values("n")
    )
    return list(
        Store.objects.select_related("region")
        .annotate(
            member_count=_count_subquery(Member.objects.filter(status__in=LIVE), "home_store_id"),
            zone_count=_count_subquery(TradingZone.objects.all(), "store_id"),
            staff_count=_count_subquery(Staff.objects.filter(is_active=True), "home_store_id"),
            household_count=Coalesce(Subquery(households, output_field=IntegerField()), Value(0)),
        )
        .order_by("code")
    )


@dataclass
class ZoneRow:
    zone: TradingZone
    members: int

    @property
    def coverage_pct(self) -> float | None:
        """Members per 100 households in the zone (D-5)."""
        if not self.zone.households:
            return None
        return round(100 * self.members / self.zone.households, 1)


def store_zones(store: Store) -> list[ZoneRow]:
    """The store's zones with their live member counts, lowest coverage first (D-5)."""
    zones = TradingZone.objects.filter(store=store).annotate(
        live=_count_subquery(Member.objects.filter(status__in=LIVE), "zone_id")
    )
    rows = [ZoneRow(zone=z, members=z.live) for z in zones]
    rows.sort(key=lambda r: (r.coverage_pct is None, r.coverage_pct or 0, r.zone.name))
    return rows


def store_unzoned_members(store: Store) -> int:
    return _live_members(store.pk).filter(zone__isnull=True).count()


def staff_list(*, store_id: int | None = None, role: str = "", q: str = "") -> list[Staff]:
    qs = Staff.objects.select_related("home_store").order_by("-is_active", "role", "username")
    if store_id:
        qs = qs.filter(home_store_id=store_id)
    if role:
        qs = qs.filter(role=role)
    if q:
        qs = qs.filter(
            Q(username__icontains=q) | Q(display_name__icontains=q) | Q(staff_code__icontains=q)
        )
    return list(qs[:500])


def terminal_list(*, store_id: int | None) -> list[PosTerminal]:
    qs = PosTerminal.objects.select_related("store").order_by("store__code", "code")
    if store_id is not None:
        qs = qs.filter(store_id=store_id)
    return list(qs)


AUDIT_PAGE = 50


def audit_entries(
    *,
    action: str = "",
    member_id: int | None = None,
    store_id: int | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    page: int = 1,
) -> tuple[list[AuditEntry], bool]:
    """One page of the audit log, newest first, and whether there is a next page."""
    qs = AuditEntry.objects.select_related("actor").order_by("-at", "-id")
    if action:
        qs = qs.filter(action=action)
    if member_id is not None:
        qs = qs.filter(member_id=member_id)
    if store_id is not None:
        qs = qs.filter(store_id=store_id)
    tz = timezone.get_current_timezone()
    if date_from:
        qs = qs.filter(at__gte=dt.datetime.combine(date_from, dt.time.min, tzinfo=tz))
    if date_to:
        qs = qs.filter(
            at__lt=dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        )
    start = (max(page, 1) - 1) * AUDIT_PAGE
    rows = list(qs[start : start + AUDIT_PAGE + 1])
    return rows[:AUDIT_PAGE], len(rows) > AUDIT_PAGE


def member_audit_trail(member_id: int, *, limit: int = 50) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.select_related("actor")
        .filter(member_id=member_id)
        .order_by("-at", "-id")[:limit]
    )


def members_by_ids(ids: list[int]) -> dict[int, Member]:
    return Member.objects.only("id", "member_no", "name").in_bulk(ids)


# --- coupons, stored value and rewards on the counter and the member page ----------------------


def _usable_in_store(store_id: int | None) -> Q:
    """Templates with no store list, or listing ``store_id`` (no store: unrestricted only)."""
    through = CouponTemplate.stores.through
    unrestricted = ~Exists(through.objects.filter(coupontemplate_id=OuterRef("template_id")))
    if store_id is None:
        return unrestricted
    return unrestricted | Exists(
        through.objects.filter(coupontemplate_id=OuterRef("template_id"), store_id=store_id)
    )


def counter_coupons(
    member_id: int, *, store_id: int, today: dt.date, limit: int = 30
) -> list[Coupon]:
    """The member's coupons the till can offer today in ``store_id``: unused, within their
    validity, of an active template usable in the store; soonest expiry first. One query.
    (The till re-checks each presented code with ``coupons_for_checkout``.)"""
    return list(
        Coupon.objects.filter(
            member_id=member_id,
            status=CouponStatus.ISSUED,
            valid_from__lte=today,
            valid_until__gte=today,
            template__active=True,
        )
        .filter(_usable_in_store(store_id))
        .select_related("template")
        .order_by("valid_until", "pk")[:limit]
    )


def issuable_templates(*, store_id: int | None, today: dt.date) -> list[CouponTemplate]:
    """Templates a coupon can be issued from by hand today: active, not past their last day,
    not a points-funded voucher (those are bought with points, through the catalogue); for a
    store's staff (``store_id``) only those usable in their store. One query."""
    through = CouponTemplate.stores.through
    qs = CouponTemplate.objects.filter(active=True, points_funded=False).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gte=today)
    )
    if store_id is not None:
        qs = qs.filter(
            ~Exists(through.objects.filter(coupontemplate_id=OuterRef("pk")))
            | Exists(through.objects.filter(coupontemplate_id=OuterRef("pk"), store_id=store_id))
        )
    return list(qs.order_by("name", "pk")[:200])


def wallet_account(member_id: int) -> WalletAccount | None:
    """The member's stored-value account (balance, principal, bonus), or None if never used."""
    return WalletAccount.objects.filter(pk=member_id).first()


def reward_catalogue() -> list[Reward]:
    """The active redemption catalogue (P-4) in its display order, with the coupon each gives."""
    return list(
        Reward.objects.filter(active=True)
        .select_related("coupon_template")
        .order_by("position", "points", "pk")[:100]
    )


def member_redemptions(member_id: int, *, limit: int = 10) -> list[RewardRedemption]:
    """The member's latest redemptions with what they got and where."""
    return list(
        RewardRedemption.objects.filter(member_id=member_id)
        .select_related("reward", "coupon", "store", "entry")
        .order_by("-at", "-pk")[:limit]
    )


def wallet_balance_after(member_id: int, reference: str) -> WalletEntry | None:
    """The stored-value entry a sale or return booked (``sale:12`` / ``return:13``): its
    ``balance_after`` is what the receipt prints as the member's balance."""
    return (
        WalletEntry.objects.filter(
            member_id=member_id,
            reference=reference,
            kind__in=[WalletEntryKind.PAY, WalletEntryKind.PAY_REVERSAL],
        )
        .order_by("-pk")
        .first()
    )

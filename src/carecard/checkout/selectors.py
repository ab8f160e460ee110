"""Reads for the counter and for a member's money pages: products by code, receipts, a member's
sales, points lots and ledger, tier standing, and the rules in force.

Each list is a fixed number of statements however many rows it has (``select_related`` /
``prefetch_related``); the console's query-count tests pin the numbers down.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

from django.db.models import F, Prefetch, Q
from django.utils import timezone

from carecard.catalog.models import Product
from carecard.checkout.config import settings_get
from carecard.checkout.models import CheckoutSettings, MemberStats, Sale, SaleLine, SaleTender
from carecard.checkout.services import measures
from carecard.loyalty.models import (
    EarningPlan,
    MemberTier,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsProgram,
    PricingRule,
    Tier,
    TierBasis,
    TierChange,
)
from carecard.loyalty.services import program_get
from carecard.loyalty.tiers import Progress, earned_tier, points_12m, tier_progress

ZERO = Decimal("0")

# --------------------------------------------------------------------------- products


def product_by_code(code: str) -> Product | None:
    """The product a clerk typed or scanned: by SKU, else by barcode (one statement)."""
    code = (code or "").strip()
    if not code or len(code) > 32 or not code.isprintable():
        return None
    found = list(Product.objects.filter(Q(sku=code) | Q(barcode=code)).order_by("pk")[:5])
    found.sort(key=lambda p: (p.sku != code, not p.is_active))
    return found[0] if found else None


def products_by_sku(skus: list[str]) -> dict[str, Product]:
    if not skus:
        return {}
    return {p.sku: p for p in Product.objects.filter(sku__in=set(skus))}


# --------------------------------------------------------------------------- receipts


def _paged(qs, page: int, per_page: int) -> tuple[list, bool]:  # type: ignore[no-untyped-def]
    start = (max(page, 1) - 1) * per_page
    rows = list(qs[start : start + per_page + 1])
    return rows[:per_page], len(rows) > per_page


# Encrypted member columns a receipt never shows: not loaded, so not decrypted.
_MEMBER_SECRETS = ("id_number", "allergies", "medical_history", "chronic_conditions")


def receipt_get(sale_id: int) -> Sale | None:
    """A sale or return with everything its receipt shows: lines with their discount rows,
    tenders, the returns made against it (for a sale) and the sale it returns (for a return)."""
    lines = SaleLine.objects.select_related("returns_line").order_by("line_no")
    return (
        Sale.objects.filter(pk=sale_id)
        .select_related("store", "member", "staff", "original_sale")
        .defer(*(f"member__{name}" for name in _MEMBER_SECRETS))
        .prefetch_related(
            Prefetch("lines", queryset=lines),
            "lines__discounts",
            Prefetch("tenders", queryset=SaleTender.objects.order_by("pk")),
            Prefetch("returns", queryset=Sale.objects.order_by("at", "pk")),
        )
        .first()
    )


def return_deadline(sale: Sale, settings: CheckoutSettings | None = None) -> dt.date:
    """The last business date a sale can still be returned (C-6)."""
    settings = settings or settings_get()
    return sale.business_date + dt.timedelta(days=settings.return_days)


SALES_PAGE = 10


def member_sales(
    member_id: int, *, page: int = 1, per_page: int = SALES_PAGE
) -> tuple[list[Sale], bool]:
    """A member's sales and returns, newest first, one page, and whether there is another."""
    qs = (
        Sale.objects.filter(member_id=member_id)
        .select_related("store", "original_sale")
        .order_by("-at", "-pk")
    )
    return _paged(qs, page, per_page)


# --------------------------------------------------------------------------- points


def points_lots(member_id: int, *, limit: int = 50) -> list[PointsLot]:
    """The member's lots that still hold points, in spending order (soonest expiry first)."""
    return list(
        PointsLot.objects.filter(member_id=member_id, remaining__gt=0)
        .select_related("entry")
        .order_by(F("expires_on").asc(nulls_last=True), "pk")[:limit]
    )


LEDGER_PAGE = 10


def points_ledger(
    member_id: int, *, page: int = 1, per_page: int = LEDGER_PAGE
) -> tuple[list[PointsEntry], bool]:
    """The member's points entries newest first, one page, and whether there is another."""
    qs = (
        PointsEntry.objects.filter(member_id=member_id)
        .select_related("store", "actor")
        .order_by("-at", "-pk")
    )
    return _paged(qs, page, per_page)


def sale_id_of(reference: str) -> int | None:
    """The sale a ledger reference names (``sale:12``, ``return:13``), for a receipt link."""
    kind, _sep, pk = (reference or "").partition(":")
    if kind in ("sale", "return") and pk.isdigit():
        return int(pk)
    return None


# --------------------------------------------------------------------------- tiers


@dataclass(frozen=True)
class TierStanding:
    """A member's tier, since when, and the way to the next one (T-1)."""

    state: MemberTier | None
    progress: Progress
    history: list[TierChange]

    @property
    def tier(self) -> Tier | None:
        return self.progress.tier

    @property
    def provisional(self) -> bool:
        """No tier recorded yet (it is set at the first purchase): the tier shown is the one
        the member's figures reach."""
        return self.state is None

    @property
    def percent(self) -> int:
        nxt = self.progress.next_tier
        if nxt is None:
            return 100
        if nxt.threshold <= 0:
            return 100
        return int(min(Decimal(100), 100 * self.progress.measure / nxt.threshold))


def member_tier(member_id: int, *, at: dt.datetime | None = None) -> TierStanding | None:
    """The member's tier standing, or None when the chain has no tiers."""
    tiers = list(Tier.objects.order_by("rank"))
    if not tiers:
        return None
    at = at or timezone.now()
    state = MemberTier.objects.select_related("tier").filter(pk=member_id).first()
    stats = MemberStats.objects.filter(pk=member_id).first() or MemberStats(member_id=member_id)
    lifetime = (
        PointsAccount.objects.filter(pk=member_id).values_list("lifetime_earned", flat=True).first()
    )
    m = measures(stats, lifetime or 0)
    if any(t.basis == TierBasis.POINTS and t.window_months for t in tiers):
        m = replace(m, points_12m=points_12m(member_id, at))
    current = state.tier if state else None
    if current is None:
        entry = [t for t in tiers if t.fee is None]
        current = earned_tier(tiers, m) or (entry[0] if entry else None)
    progress = tier_progress(current, tiers, m)
    history = list(
        TierChange.objects.filter(member_id=member_id)
        .select_related("from_tier", "to_tier")
        .order_by("-at", "-pk")[:5]
    )
    return TierStanding(state=state, progress=progress, history=history)


# --------------------------------------------------------------------------- rules in force


@dataclass(frozen=True)
class RulesInForce:
    pricing: list[PricingRule]
    inactive_pricing: int
    earning: list[EarningPlan]
    tiers: list[Tier]
    program: PointsProgram
    checkout: CheckoutSettings


def rules_in_force() -> RulesInForce:
    """The member rules HQ has configured: pricing, earning, tiers, points and counter settings."""
    rules = list(PricingRule.objects.order_by("position", "pk"))
    return RulesInForce(
        pricing=[r for r in rules if r.active],
        inactive_pricing=sum(1 for r in rules if not r.active),
        earning=list(EarningPlan.objects.filter(active=True).order_by("position", "pk")),
        tiers=list(Tier.objects.order_by("rank")),
        program=program_get(),
        checkout=settings_get(),
    )

"""The stored earning plan as the pure module's dataclass; JSON helpers for scopes and
schedules (checkout/config.py converts the pricing rules)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from carecard.loyalty.earning import DEFAULT_EARNING_RULE, DayMultiplier, EarningRule
from carecard.loyalty.models import EarningPlan
from carecard.loyalty.rules import Schedule, Scope

_SCOPE_KEYS = frozenset(Scope.__dataclass_fields__)


def scope_of(data: dict[str, Any] | None) -> Scope:
    """A ``Scope`` from its JSON form; unknown keys are an error (a typo must not widen a rule)."""
    data = data or {}
    unknown = set(data) - _SCOPE_KEYS
    if unknown:
        raise ValueError(f"unknown scope keys: {sorted(unknown)}")
    return Scope(**{k: v for k, v in data.items() if v})


def schedule_of(
    kind: str, days: list[int] | None = None, dates: list[list[int]] | None = None, **dates_kw: Any
) -> Schedule:
    return Schedule(
        kind=kind,  # type: ignore[arg-type]
        days=tuple(days or ()),
        dates=tuple((m, d) for m, d in (dates or ())),
        **dates_kw,
    )


def earning_rule() -> EarningRule:
    """The active earning plan (lowest position), or 1 point per CNY when none is set."""
    plan = EarningPlan.objects.filter(active=True).order_by("position", "pk").first()
    if plan is None:
        return DEFAULT_EARNING_RULE
    extra: dict[str, Any] = {}
    if plan.scope:
        extra["scope"] = scope_of(plan.scope)
    if plan.non_earning_tenders:
        extra["non_earning_tenders"] = frozenset(plan.non_earning_tenders)
    return EarningRule(
        id=plan.pk,
        name=plan.name,
        amount_per_point=plan.amount_per_point,
        rounding=plan.rounding,  # type: ignore[arg-type]
        sku_multipliers={k: Decimal(str(v)) for k, v in (plan.sku_multipliers or {}).items()},
        category_multipliers={
            int(k): Decimal(str(v)) for k, v in (plan.category_multipliers or {}).items()
        },
        tier_multipliers={k: Decimal(str(v)) for k, v in (plan.tier_multipliers or {}).items()},
        day_multipliers=tuple(
            DayMultiplier(
                name=d.get("name", "会员日"),
                schedule=schedule_of(d["schedule_kind"], d.get("days"), d.get("dates")),
                multiplier=Decimal(str(d["multiplier"])),
            )
            for d in plan.day_multipliers or ()
        ),
        receipt_bonus=plan.receipt_bonus,
        min_amount=plan.min_amount,
        **extra,
    )

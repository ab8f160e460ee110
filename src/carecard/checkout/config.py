"""The counter's configuration as the pricing engine's dataclasses."""

from __future__ import annotations

from carecard.checkout.engine import DiscountRule, PricingPolicy
from carecard.checkout.models import CheckoutSettings
from carecard.loyalty.config import schedule_of, scope_of
from carecard.loyalty.models import PricingRule


def settings_get() -> CheckoutSettings:
    return CheckoutSettings.objects.order_by("pk").first() or CheckoutSettings.objects.create()


def pricing_policy(settings: CheckoutSettings) -> PricingPolicy:
    return PricingPolicy(
        stacking=settings.stacking,  # type: ignore[arg-type]
        coupon_stacking=settings.coupon_stacking,  # type: ignore[arg-type]
        coupons_on_flagged=settings.coupons_on_flagged,
    )


def pricing_rules(region_id: int | None) -> list[DiscountRule]:
    """Active member-pricing rules for a store's region, in HQ's order."""
    rules = []
    for rule in PricingRule.objects.filter(active=True).order_by("position", "pk"):
        if rule.regions and region_id not in rule.regions:
            continue
        rules.append(
            DiscountRule(
                id=rule.pk,
                name=rule.name,
                kind=rule.kind,  # type: ignore[arg-type]
                rate=rule.rate,
                schedule=schedule_of(
                    rule.schedule_kind,
                    rule.schedule_days,
                    rule.schedule_dates,
                    effective_from=rule.effective_from,
                    effective_to=rule.effective_to,
                ),
                tiers=frozenset(rule.tiers or ()),
                scope=scope_of(rule.scope),
                applies_to_flagged=rule.applies_to_flagged,
                funded_by=rule.funded_by,
                legal_basis=rule.legal_basis,
            )
        )
    return rules

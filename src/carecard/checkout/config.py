"""The counter's configuration as the pricing engine's dataclasses, cached in the process.

Quote and commit read the same rules thousands of times a minute; building them costs more
than the sale itself. Each value is cached for ``TTL`` seconds, so a change made in the
console reaches every worker within that time; the process that makes the change (presets,
admin) calls ``invalidate()`` and sees it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from carecard.catalog.models import Category, Product
from carecard.chain.models import Store
from carecard.checkout.engine import DiscountRule, Item, PricingPolicy
from carecard.checkout.models import CheckoutSettings, SpendBenefit
from carecard.coupons.models import PurchaseRule
from carecard.loyalty.config import earning_rule as _earning_rule
from carecard.loyalty.config import schedule_of, scope_of
from carecard.loyalty.earning import EarningRule
from carecard.loyalty.models import LadderStep, PointsProgram, PricingRule, Tier
from carecard.loyalty.services import program_get as _program_get

TTL = 5.0
_cache: dict[Any, tuple[float, Any]] = {}


def _cached[T](key: Any, load: Callable[[], T]) -> T:
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < TTL:
        return hit[1]  # type: ignore[no-any-return]
    value = load()
    _cache[key] = (now, value)
    return value


def invalidate() -> None:
    """Forget every cached value (after a configuration change in this process)."""
    _cache.clear()


def settings_get() -> CheckoutSettings:
    def load() -> CheckoutSettings:
        return CheckoutSettings.objects.order_by("pk").first() or CheckoutSettings.objects.create()

    return _cached("settings", load)


def program() -> PointsProgram:
    return _cached("program", _program_get)


def earning_rule() -> EarningRule:
    return _cached("earning", _earning_rule)


def tiers() -> list[Tier]:
    return _cached("tiers", lambda: list(Tier.objects.order_by("rank")))


def spend_benefits() -> list[SpendBenefit]:
    return _cached(
        "spend_benefits",
        lambda: list(SpendBenefit.objects.filter(active=True).select_related("coupon_template")),
    )


def has_purchase_rules() -> bool:
    """Whether any 满即送 rule is active: most chains run none, and then a sale asks nothing."""
    return _cached("purchase_rules", lambda: PurchaseRule.objects.filter(active=True).exists())


def has_ladder() -> bool:
    """Whether a rebate ladder runs (most chains have none: a sale then asks nothing)."""
    return _cached("ladder", lambda: LadderStep.objects.exists())


def store(store_id: int) -> Store | None:
    return _cached(("store", store_id), lambda: Store.objects.filter(pk=store_id).first())


def products(skus: set[str]) -> dict[str, Product]:
    """The basket's products by SKU. Each is kept ``TTL`` seconds like the rules (a price
    change reaches the tills within that time); SKUs not kept are read in one statement, and
    an unknown SKU is asked every time."""
    from carecard.checkout.reads import products_by_sku

    now = time.monotonic()
    found: dict[str, Product] = {}
    missing = set()
    for sku in skus:
        hit = _cache.get(("product", sku))
        if hit is not None and now - hit[0] < TTL:
            found[sku] = hit[1]
        else:
            missing.add(sku)
    if missing:
        for sku, product in products_by_sku(missing).items():
            _cache[("product", sku)] = (now, product)
            found[sku] = product
    return found


def engine_item(p: Product) -> Item:
    """A catalogue product as the pricing engine sees it (the till, the demo and the
    benchmark's history all price through this)."""
    return Item(
        sku=p.sku,
        name=p.name,
        item_class=p.item_class,
        category_ids=category_path(p.category_id),
        shelf_price=p.shelf_price,
        member_price=p.member_price,
        is_special_price=p.is_special_price,
        is_limited=p.is_limited,
        is_promotional=p.is_promotional,
        is_insurance_listed=p.is_insurance_listed,
        contains_ephedrine=p.contains_ephedrine,
    )


def category_path(category_id: int) -> tuple[int, ...]:
    """A category followed by its ancestors (the tree is small: one query for all of it)."""

    def load() -> dict[int, tuple[int, ...]]:
        parents = dict(Category.objects.values_list("pk", "parent_id"))
        paths = {}
        for cid in parents:
            path, node = [], cid
            while node is not None and node not in path:
                path.append(node)
                node = parents.get(node)
            paths[cid] = tuple(path)
        return paths

    paths = _cached("categories", load)
    if category_id not in paths:  # a category created since: reload once
        invalidate()
        paths = _cached("categories", load)
    return paths.get(category_id, (category_id,))


def pricing_policy(settings: CheckoutSettings) -> PricingPolicy:
    return PricingPolicy(
        stacking=settings.stacking,  # type: ignore[arg-type]
        coupon_stacking=settings.coupon_stacking,  # type: ignore[arg-type]
        coupons_on_flagged=settings.coupons_on_flagged,
    )


def pricing_rules(region_id: int | None) -> list[DiscountRule]:
    """Active member-pricing rules for a store's region, in HQ's order."""
    return _cached(("rules", region_id), lambda: _load_rules(region_id))


def _load_rules(region_id: int | None) -> list[DiscountRule]:
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

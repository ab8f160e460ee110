"""HQ's member rules page (会员规则): the pricing, earning, tier, points and counter rules in force,
in plain Chinese, and loading one of the published presets (HQ administrators only)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.catalog.models import ItemClass
from carecard.checkout import selectors
from carecard.checkout.models import TenderKind
from carecard.checkout.presets import PRESETS, preset_load
from carecard.console.http import client_ip, done, page, permission
from carecard.core.money import rate_label
from carecard.core.roles import Perm
from carecard.loyalty.config import schedule_of
from carecard.loyalty.models import (
    EarningPlan,
    ExpiryPolicy,
    PricingRule,
    PricingRuleKind,
    Tier,
    TierBasis,
)


def _require_hq(staff: Any) -> None:
    if not staff.is_hq:
        raise PermissionDenied(_("会员规则由总部维护"))


def _labels(choices: Any, values: list[str]) -> str:
    names = dict(choices.choices)
    return "、".join(str(names.get(v, v)) for v in values)


def _scope_text(scope: dict[str, Any]) -> str:
    parts = []
    if scope.get("classes"):
        parts.append(_("仅%(c)s") % {"c": _labels(ItemClass, scope["classes"])})
    if scope.get("skus"):
        parts.append(_("仅商品 %(s)s") % {"s": "、".join(scope["skus"])})
    if scope.get("categories"):
        parts.append(_("仅指定的 %(n)d 个分类") % {"n": len(scope["categories"])})
    if scope.get("exclude_classes"):
        parts.append(_("%(c)s除外") % {"c": _labels(ItemClass, scope["exclude_classes"])})
    if scope.get("exclude_skus"):
        parts.append(_("商品 %(s)s 除外") % {"s": "、".join(scope["exclude_skus"])})
    if scope.get("exclude_categories"):
        parts.append(_("%(n)d 个分类除外") % {"n": len(scope["exclude_categories"])})
    return "；".join(parts) or _("全部商品")


def _schedule_text(rule: PricingRule) -> str:
    try:
        return schedule_of(
            rule.schedule_kind,
            rule.schedule_days,
            rule.schedule_dates,
            effective_from=rule.effective_from,
            effective_to=rule.effective_to,
        ).label
    except (ValueError, TypeError, KeyError):
        return rule.get_schedule_kind_display()


def describe_pricing(rule: PricingRule) -> dict[str, Any]:
    """One pricing rule as a sentence a store manager can check against the chain's leaflet."""
    if rule.kind == PricingRuleKind.MEMBER_PRICE:
        benefit = _("按商品会员价")
    elif rule.rate is not None:
        benefit = rate_label(rule.rate)
    else:
        benefit = "—"
    notes = [_scope_text(rule.scope or {})]
    notes.append(
        _("特价/限量/促销商品也适用") if rule.applies_to_flagged else _("特价/限量/促销商品除外")
    )
    if rule.tiers:
        notes.append(_("限 %(t)s") % {"t": "、".join(str(t) for t in rule.tiers)})
    if rule.regions:
        notes.append(_("限 %(n)d 个区域") % {"n": len(rule.regions)})
    if rule.legal_basis:
        notes.append(_("依据：%(b)s") % {"b": rule.legal_basis})
    return {
        "rule": rule,
        "when": _schedule_text(rule),
        "benefit": benefit,
        "notes": notes,
    }


def describe_earning(plan: EarningPlan) -> dict[str, Any]:
    per = plan.amount_per_point.normalize()
    main = _("每消费 ¥%(a)s 积 1 分（%(r)s）") % {
        "a": f"{per:f}",
        "r": plan.get_rounding_display(),
    }
    notes = []
    if plan.scope:
        notes.append(_scope_text(plan.scope))
    else:
        notes.append(_("特价/限量/促销商品不积分"))
    for day in plan.day_multipliers or ():
        try:
            when = schedule_of(day["schedule_kind"], day.get("days"), day.get("dates")).label
        except (ValueError, TypeError, KeyError):
            when = day.get("schedule_kind", "")
        notes.append(
            _("%(name)s（%(when)s）积分 × %(m)s")
            % {"name": day.get("name", ""), "when": when, "m": day.get("multiplier", "")}
        )
    if plan.tier_multipliers:
        notes.append(
            _("等级倍数：%(t)s")
            % {"t": "、".join(f"{k} × {v}" for k, v in plan.tier_multipliers.items())}
        )
    if plan.sku_multipliers or plan.category_multipliers:
        notes.append(
            _("%(n)d 个商品/分类另有倍数")
            % {"n": len(plan.sku_multipliers or {}) + len(plan.category_multipliers or {})}
        )
    if plan.receipt_bonus:
        notes.append(_("每单另送 %(n)d 分") % {"n": plan.receipt_bonus})
    if plan.min_amount:
        notes.append(_("满 ¥%(a)s 才积分") % {"a": plan.min_amount})
    notes.append(_("医保统筹、医保个人账户和积分抵现支付的部分不积分"))
    if plan.non_earning_tenders:
        notes.append(
            _("%(t)s支付的部分不积分") % {"t": _labels(TenderKind, plan.non_earning_tenders)}
        )
    return {"plan": plan, "main": main, "notes": notes}


def describe_tier(tier: Tier, discounts: dict[str, list[str]]) -> dict[str, Any]:
    threshold = tier.threshold.normalize()
    if tier.fee is not None:
        how = _("付费开通：¥%(f)s / %(m)d 个月") % {"f": tier.fee, "m": tier.paid_months}
    elif tier.threshold <= 0:
        how = _("入会即得")
    else:
        t = f"{threshold:f}"
        lifetime = {
            TierBasis.POINTS: _("累计获得积分达到 %(t)s 分"),
            TierBasis.SPEND: _("累计消费满 ¥%(t)s"),
            TierBasis.VISITS: _("累计消费 %(t)s 次"),
        }
        windowed = {
            TierBasis.POINTS: _("近 %(m)d 个月获得积分达到 %(t)s 分"),
            TierBasis.SPEND: _("近 %(m)d 个月消费满 ¥%(t)s"),
            TierBasis.VISITS: _("近 %(m)d 个月消费 %(t)s 次"),
        }
        if tier.window_months:
            how = windowed[tier.basis] % {"m": tier.window_months, "t": t}
        else:
            how = lifetime[tier.basis] % {"t": t}
    return {"tier": tier, "how": how, "discounts": discounts.get(tier.code, [])}


@permission()
def rules(request: HttpRequest) -> HttpResponse:
    staff = request.user
    _require_hq(staff)
    found = selectors.rules_in_force()
    tier_discounts: dict[str, list[str]] = {}
    for rule in found.pricing:
        if rule.kind == PricingRuleKind.TIER and rule.rate is not None:
            for code in rule.tiers or ():
                tier_discounts.setdefault(code, []).append(rate_label(rule.rate))
    program = found.program
    expiry = program.get_expiry_policy_display()
    if program.expiry_policy == ExpiryPolicy.ROLLING_MONTHS:
        expiry = _("获得后 %(m)d 个月过期") % {"m": program.expiry_months}
    context = {
        "pricing": [describe_pricing(r) for r in found.pricing],
        "inactive_pricing": found.inactive_pricing,
        "earning": [describe_earning(p) for p in found.earning],
        "tiers": [describe_tier(t, tier_discounts) for t in found.tiers],
        "program": program,
        "expiry": expiry,
        "point_value": (Decimal(str(program.point_value)) * 100).quantize(Decimal("0.01")),
        "checkout": found.checkout,
        "presets": list(PRESETS.values()),
        "can_load": staff.can(Perm.SETTINGS_MANAGE),
        "show_admin": bool(staff.is_staff and staff.can(Perm.SETTINGS_MANAGE)),
    }
    return page(request, "console/rules.html", context)


@require_POST
@permission(Perm.SETTINGS_MANAGE)
def rules_preset(request: HttpRequest) -> HttpResponse:
    key = request.POST.get("preset", "")
    if key not in PRESETS:
        messages.error(request, _("请选择要载入的预置规则"))
        return done(request, reverse("console:rules"))
    preset = preset_load(key, actor=request.user, ip=client_ip(request))
    messages.success(request, _("已载入预置规则：%(name)s") % {"name": preset.name})
    return done(request, reverse("console:rules"))

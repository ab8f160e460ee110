"""Published member rules of real chains, loadable in one step (``carecard presets load NAME``).

Each preset replaces the chain's pricing rules, earning plan, tiers and the points, checkout
and membership settings it names; everything else is left as it is. Scenario tests
(tests/checkout/test_presets.py) reproduce each chain's published examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from carecard.checkout import config
from carecard.checkout.config import settings_get
from carecard.checkout.models import SpendBenefit
from carecard.core.audit import AuditAction, audit
from carecard.coupons import services as coupon_services
from carecard.coupons.models import CouponTemplate
from carecard.loyalty.ladder import YEARLY_BONUS_TEMPLATE
from carecard.loyalty.models import (
    EarningPlan,
    ExpiryPolicy,
    LadderStep,
    PricingRule,
    Reward,
    RewardKind,
    ShortfallPolicy,
    Tier,
)
from carecard.loyalty.services import program_get
from carecard.members.models import EntryRule
from carecard.members.services import policy_get

D = Decimal


@dataclass(frozen=True)
class Preset:
    key: str
    name: str
    summary: str
    pricing_rules: list[dict[str, Any]]
    earning: dict[str, Any]
    tiers: list[dict[str, Any]] = field(default_factory=list)
    program: dict[str, Any] = field(default_factory=dict)
    checkout: dict[str, Any] = field(default_factory=dict)
    membership: dict[str, Any] = field(default_factory=dict)
    rewards: list[tuple[str, int, str]] = field(default_factory=list)  # name, points, CNY off
    spend_benefits: list[tuple[str, str, str]] = field(default_factory=list)  # name, CNY, voucher
    ladder: list[tuple[int, str, str]] = field(default_factory=list)  # points, voucher, CNY
    ladder_yearly_bonus: str = ""  # CNY of the voucher after twelve cycles in a year


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            key="wangqu",
            name="王曲同心大药店",
            summary="消费满20元免费办卡；每1元积1分；特价/限量/促销商品不积分、不打折；"
            "农历初八/十八/廿八会员日9.5折，其余日子9.8折；积分12月31日清零；"
            "挂失补卡工本费2元，损坏换卡1元。",
            pricing_rules=[
                {
                    "name": "会员日",
                    "kind": "member_day",
                    "rate": D("0.95"),
                    "schedule_kind": "lunar_days",
                    "schedule_days": [8, 18, 28],
                },
                {"name": "会员折扣", "kind": "base", "rate": D("0.98")},
            ],
            earning={"name": "每1元积1分", "amount_per_point": D("1.00")},
            program={"expiry_policy": ExpiryPolicy.YEAR_END},
            rewards=[("100积分换5元代金券", 100, "5.00")],
            spend_benefits=[("年消费满5000元送免费体检", "5000.00", "免费体检券")],
            membership={
                "entry_rule": EntryRule.PURCHASE,
                "entry_min_purchase": D("20.00"),
                "lost_card_fee": D("2.00"),
                "damaged_card_fee": D("1.00"),
            },
        ),
        Preset(
            key="four_tier",
            name="四级会员制大药房",
            summary="每1元积1分；每周日非特价商品8.5折；生日当天8折；累计积分5000银卡8.8折、"
            "10000金卡8.5折、20000白金卡8折、40000钻石卡7.5折；30天内退货扣回积分，"
            "积分已兑换的按价值扣回。",
            pricing_rules=[
                {
                    "name": "周日会员日",
                    "kind": "member_day",
                    "rate": D("0.85"),
                    "schedule_kind": "weekdays",
                    "schedule_days": [6],
                },
                {
                    "name": "生日8折",
                    "kind": "birthday",
                    "rate": D("0.80"),
                    "schedule_kind": "birthday_day",
                },
                {"name": "银卡8.8折", "kind": "tier", "rate": D("0.88"), "tiers": ["silver"]},
                {"name": "金卡8.5折", "kind": "tier", "rate": D("0.85"), "tiers": ["gold"]},
                {"name": "白金卡8折", "kind": "tier", "rate": D("0.80"), "tiers": ["platinum"]},
                {"name": "钻石卡7.5折", "kind": "tier", "rate": D("0.75"), "tiers": ["diamond"]},
            ],
            earning={"name": "每1元积1分", "amount_per_point": D("1.00")},
            tiers=[
                {"code": "ordinary", "name": "普通卡", "rank": 0, "threshold": D("0")},
                {"code": "silver", "name": "银卡", "rank": 1, "threshold": D("5000")},
                {"code": "gold", "name": "金卡", "rank": 2, "threshold": D("10000")},
                {"code": "platinum", "name": "白金卡", "rank": 3, "threshold": D("20000")},
                {"code": "diamond", "name": "钻石卡", "rank": 4, "threshold": D("40000")},
            ],
            program={"shortfall_policy": ShortfallPolicy.RECOVER_VALUE},
            checkout={"return_days": 30},
            rewards=[
                ("500积分换10元券", 500, "10.00"),
                ("1000积分换20元券", 1000, "20.00"),
                ("2000积分换50元券", 2000, "50.00"),
                ("5000积分换150元券", 5000, "150.00"),
                ("10000积分换400元券", 10000, "400.00"),
            ],
        ),
        Preset(
            key="rebate_ladder",
            name="返利阶梯（罗欣 / 大和）",
            summary="每1元积1分（可选每2元积1分）；积分阶梯返利：2000分送20元礼品券、5000分送50元券、"
            "10000分送100元券后重新累计；用返利券支付的部分不积分；一年内满12轮再奖500元；"
            "每月可列出当月积分满2000分的会员。",
            pricing_rules=[],
            earning={
                "name": "每1元积1分",
                "amount_per_point": D("1.00"),
                "non_earning_tenders": ["coupon"],
            },
            ladder=[
                (2000, "返利20元礼品券", "20.00"),
                (5000, "返利50元券", "50.00"),
                (10000, "返利100元券", "100.00"),
            ],
            ladder_yearly_bonus="500.00",
        ),
    )
}


def preset_load(key: str, *, actor: Any = None, ip: str | None = None) -> Preset:
    """Replace the chain's member rules with a preset's, in one transaction, audited (G-4:
    who replaced the rules, from the console or the command line)."""
    preset = PRESETS[key]
    with transaction.atomic():
        audit(
            action=AuditAction.SETTINGS,
            actor=actor,
            target=f"preset:{key}",
            detail={"preset": key, "name": preset.name},
            ip=ip,
        )
        PricingRule.objects.all().delete()
        for i, rule in enumerate(preset.pricing_rules):
            PricingRule.objects.create(position=i, **rule)
        EarningPlan.objects.all().delete()
        EarningPlan.objects.create(**preset.earning)
        # Tiers are matched by code, never deleted: members and their history point at them.
        for tier in preset.tiers:
            Tier.objects.update_or_create(
                code=tier["code"], defaults={k: v for k, v in tier.items() if k != "code"}
            )
        for obj, values in (
            (program_get(), preset.program),
            (settings_get(), preset.checkout),
            (policy_get(), preset.membership),
        ):
            for name, value in values.items():
                setattr(obj, name, value)
            if values:
                obj.save()
        for position, (name, cost, value) in enumerate(preset.rewards):
            _reward(name, cost, D(value), position)
        for threshold, voucher, value in preset.ladder:
            LadderStep.objects.update_or_create(
                threshold=threshold,
                defaults={"coupon_template": _voucher(voucher, D(value))},
            )
        if preset.ladder_yearly_bonus:
            _voucher(YEARLY_BONUS_TEMPLATE, D(preset.ladder_yearly_bonus))
        for name, threshold, voucher in preset.spend_benefits:
            template = CouponTemplate.objects.filter(name=voucher).first()
            if template is None:
                # A service voucher redeemed at the partner hospital, not at the till.
                template = coupon_services.coupon_template_create(
                    name=voucher,
                    kind="service",
                    value=D("0.01"),
                    scope={"skus": ["SERVICE-HEALTH-CHECK"]},
                    valid_days=365,
                    funded_by="hq",
                    per_member_limit=None,
                )
            SpendBenefit.objects.update_or_create(
                name=name, defaults={"threshold": D(threshold), "coupon_template": template}
            )
    config.invalidate()
    return preset


def _voucher(name: str, value: Decimal) -> CouponTemplate:
    """A points-funded voucher template: what it pays earns no points (C-4a)."""
    template = CouponTemplate.objects.filter(name=name).first()
    if template is None:
        template = coupon_services.coupon_template_create(
            name=name,
            kind="amount_off",
            value=value,
            valid_days=90,
            points_funded=True,
            funded_by="points",
            stacking_group="points",
        )
    return template


def _reward(name: str, cost: int, value: Decimal, position: int) -> Reward:
    """A points-for-voucher reward."""
    template = _voucher(name, value)
    reward, _created = Reward.objects.update_or_create(
        name=name,
        defaults={
            "kind": RewardKind.COUPON,
            "points": cost,
            "coupon_template": template,
            "active": True,
            "position": position,
        },
    )
    return reward

"""The counter's pricing engine (SPEC C-1, C-3, C-4, C-4a): a pure function from a basket, the
member, the HQ rules and the coupons presented to a priced basket with one stored discount
row per line and reason, so receipts can show original price, discount and net (C-4).

Order of work, per basket:

1. Per line, ``original = shelf_price × quantity``.
2. Member discounts (members only): every applicable rule of kind member price / base /
   member day / birthday / tier offers a discount on the line; the policy decides. Default
   ``best_single``: the one largest discount wins. ``multiply``: the best rate of each kind
   in ``policy.multiply_kinds`` is multiplied into one compound rate (tier 8.5折 × member day
   9.5折 = 8.075折), which then competes with the single offers. Items flagged
   特价/限量/促销 get no member discount unless the rule has ``applies_to_flagged``.
3. Coupons, in the order presented, on the already discounted amounts: minimum spend is
   checked against the eligible lines' amount after member discounts (before any coupon), the
   coupon's value is capped at what is left on the eligible lines and allocated across them by
   net with ``allocate`` (largest remainder, whole cents), at most one coupon per stacking
   group. A refused coupon is listed with a stable code and a Chinese reason.

Rounding is explicit and happens once per line discount: a rate discount is
``to_money(original × (1 − rate))`` on the line total (half up), a compound rate is rounded
once on its product, a coupon is rounded once on the basket and split in whole cents. So
per line and per basket ``sum(discounts) + net == original`` exactly, every net is ≥ 0 and the
line nets add up to the basket net to the cent.

Walk-ins (``member`` is ``None``, or ``is_member`` False) get no member discounts. Coupons are
``members_only`` by default (they are issued to members); a printed coupon that anyone may use
sets ``members_only=False``.

Which coupons are valid today, in this store, for this member (dates, per-member limits,
single use) and which rules apply in this region is decided by the caller before pricing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, get_args

from carecard.core.errors import DomainError, FieldError
from carecard.core.money import ZERO, allocate, format_cny, is_money, rate_label, to_money
from carecard.loyalty.rules import (
    ALL_ITEMS,
    EVERY_DAY,
    FLAG_TAGS,
    ITEM_CLASSES,
    Member,
    Schedule,
    Scope,
    matches,
    member_active,
)

RuleKind = Literal["member_price", "base", "member_day", "birthday", "tier"]
# Also the tie-break order when two offers give the same amount.
RULE_KINDS: tuple[str, ...] = get_args(RuleKind)
CouponKind = Literal["amount_off", "percent_off"]
COUPON_KINDS: frozenset[str] = frozenset(get_args(CouponKind))
Stacking = Literal["best_single", "multiply"]
CouponStacking = Literal["one_per_group", "single"]

KIND_LABELS: dict[str, str] = {
    "member_price": "会员价",
    "base": "会员折扣",
    "member_day": "会员日",
    "birthday": "生日",
    "tier": "等级折扣",
    "coupon": "优惠券",
}

# 《药品流通监督管理办法》第二十条: no gifts of Rx or 甲类OTC medicines as purchase incentives.
GIFT_BANNED_CLASSES: frozenset[str] = frozenset({"rx", "otc_a"})
GIFT_INCENTIVE_LEGAL_BASIS = (
    "《药品流通监督管理办法》第二十条：不得以搭售、买药品赠药品、买商品赠药品等方式"
    "向公众赠送处方药或者甲类非处方药"
)
NO_GIFT_SCOPE = Scope(exclude_classes=GIFT_BANNED_CLASSES)


class PricingError(DomainError):
    """Bad pricing input (an invalid price, quantity, rate or coupon definition)."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(
            code=code, message=message, errors=[FieldError(field, code, message)], status=422
        )
        self.field = field


def _require_money(value: object, field: str, *, positive: bool = False) -> Decimal:
    """``value`` as a 2-place Decimal; raises ``PricingError`` unless it is whole cents ≥ 0."""
    if not is_money(value) or value < 0 or (positive and value == 0):  # type: ignore[operator]
        what = "大于 0" if positive else "不小于 0"
        raise PricingError("invalid_amount", field, f"金额应为{what}且最多两位小数的 Decimal")
    return to_money(value)  # type: ignore[arg-type]


def _short(amount: Decimal) -> str:
    """``10.00`` → ``10``, ``9.90`` → ``9.90``: how thresholds are written (满100减10)."""
    return str(amount.quantize(Decimal(1))) if amount == amount.to_integral_value() else str(amount)


def _require_rate(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 1:
        raise PricingError("invalid_rate", field, "折扣率应为 0–1 之间的 Decimal（0.95 即 9.5折）")
    return value


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, kw_only=True)
class Item:
    """A product as the engine sees it. ``category_ids`` is the product's category followed by
    its ancestors (most specific first), so rules on a parent category cover it.
    """

    sku: str
    name: str
    item_class: str = "other"
    category_ids: tuple[int, ...] = ()
    shelf_price: Decimal
    member_price: Decimal | None = None
    is_special_price: bool = False
    is_limited: bool = False
    is_promotional: bool = False
    is_insurance_listed: bool = False
    contains_ephedrine: bool = False
    tags: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shelf_price", _require_money(self.shelf_price, "shelf_price"))
        if self.member_price is not None:
            object.__setattr__(
                self, "member_price", _require_money(self.member_price, "member_price")
            )
        if self.item_class not in ITEM_CLASSES:
            raise PricingError("invalid_item_class", "item_class", f"未知类别：{self.item_class}")
        object.__setattr__(self, "category_ids", tuple(self.category_ids))
        flags = {
            "special_price": self.is_special_price,
            "limited": self.is_limited,
            "promotional": self.is_promotional,
            "insurance_listed": self.is_insurance_listed,
            "ephedrine": self.contains_ephedrine,
        }
        object.__setattr__(self, "tags", frozenset(tag for tag, on in flags.items() if on))

    @property
    def flagged(self) -> bool:
        """特价/限量/促销: no member discount, coupon or points unless a rule allows it."""
        return bool(self.tags & FLAG_TAGS)


@dataclass(frozen=True)
class Line:
    """A basket line: an item and a whole quantity ≥ 1."""

    item: Item
    quantity: int

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise PricingError("invalid_quantity", "quantity", "数量应为整数")
        if self.quantity < 1:
            raise PricingError("invalid_quantity", "quantity", "数量至少为 1")


@dataclass(frozen=True, kw_only=True)
class DiscountRule:
    """An HQ member-pricing rule (C-3).

    ``rate`` is what the member pays (``Decimal("0.95")`` = 9.5折); a ``member_price`` rule has
    no rate and offers each item's own member price. ``tiers`` limits the rule to those tier
    codes (required for ``tier`` rules; empty = every member). ``legal_basis`` records why a
    rule exists when the reason is a regulation; its effective dates are the schedule's.
    """

    id: str | int
    name: str = ""
    kind: RuleKind
    rate: Decimal | None = None
    schedule: Schedule = EVERY_DAY
    tiers: frozenset[str] = frozenset()
    scope: Scope = ALL_ITEMS
    applies_to_flagged: bool = False
    funded_by: str = "hq"
    legal_basis: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", frozenset(self.tiers))
        if self.kind not in RULE_KINDS:
            raise PricingError("invalid_rule", "kind", f"未知的折扣类型：{self.kind}")
        if self.kind == "member_price":
            if self.rate is not None:
                raise PricingError("invalid_rule", "rate", "会员价规则不设折扣率")
        else:
            _require_rate(self.rate, "rate")
        if self.kind == "tier" and not self.tiers:
            raise PricingError("invalid_rule", "tiers", "等级折扣必须指定适用等级")
        if self.kind == "birthday" and not self.schedule.needs_birthday:
            raise PricingError("invalid_rule", "schedule", "生日折扣的日程应为生日当天或生日当月")
        if not self.funded_by:
            raise PricingError("invalid_rule", "funded_by", "请注明费用承担方")

    @property
    def label(self) -> str:
        """The rule's Chinese name, e.g. ``会员日``."""
        return self.name or KIND_LABELS[self.kind]

    def applies(self, item: Item, member: Member, day: dt.date) -> bool:
        """Whether the rule offers a discount on ``item`` for ``member`` on ``day``."""
        if item.flagged and not self.applies_to_flagged:
            return False
        if self.tiers and member.tier not in self.tiers:
            return False
        return self.scope.contains(item) and matches(self.schedule, day, member.birthday)


@dataclass(frozen=True, kw_only=True)
class Coupon:
    """A coupon presented at the counter (V-1, V-3).

    ``amount_off``: ``value`` off when the eligible amount reaches ``min_spend``;
    ``percent_off``: the eligible amount × ``rate`` is paid (``max_off`` optionally caps it).
    ``points_funded`` marks coupons bought with points: their share earns no points.
    ``applies_to_flagged`` ``None`` follows the policy.
    """

    code: str
    template_id: str | int | None = None
    name: str = ""
    kind: CouponKind
    value: Decimal | None = None
    rate: Decimal | None = None
    min_spend: Decimal = ZERO
    max_off: Decimal | None = None
    scope: Scope = ALL_ITEMS
    stacking_group: str = "default"
    funded_by: str = "hq"
    points_funded: bool = False
    members_only: bool = True
    applies_to_flagged: bool | None = None

    def __post_init__(self) -> None:
        if not self.code:
            raise PricingError("invalid_coupon", "code", "券码不能为空")
        if self.kind not in COUPON_KINDS:
            raise PricingError("invalid_coupon", "kind", f"未知的券类型：{self.kind}")
        if self.kind == "amount_off":
            object.__setattr__(self, "value", _require_money(self.value, "value", positive=True))
            if self.rate is not None:
                raise PricingError("invalid_coupon", "rate", "满减券不设折扣率")
        else:
            if _require_rate(self.rate, "rate") == 1:
                raise PricingError("invalid_rate", "rate", "折扣券的折扣率应小于 1")
            if self.value is not None:
                raise PricingError("invalid_coupon", "value", "折扣券不设面额")
            if self.max_off is not None:
                max_off = _require_money(self.max_off, "max_off", positive=True)
                object.__setattr__(self, "max_off", max_off)
        object.__setattr__(self, "min_spend", _require_money(self.min_spend, "min_spend"))

    @property
    def label(self) -> str:
        """Chinese description used in reasons, e.g. ``优惠券「新客券」满100减10``."""
        head = f"优惠券「{self.name or self.code}」"
        if self.kind == "amount_off":
            assert self.value is not None
            if self.min_spend > 0:
                return f"{head}满{_short(self.min_spend)}减{_short(self.value)}"
            return f"{head}减{_short(self.value)}元"
        assert self.rate is not None
        text = f"{head}{rate_label(self.rate)}"
        if self.max_off is not None:
            text += f"（最高减{_short(self.max_off)}）"
        if self.min_spend > 0:
            text += f"（满{_short(self.min_spend)}可用）"
        return text


@dataclass(frozen=True, kw_only=True)
class PricingPolicy:
    """How discounts combine (configurable by HQ, C-3).

    ``stacking``: ``best_single`` (default) gives each line the single best member discount;
    ``multiply`` multiplies the best rate of each kind in ``multiply_kinds`` into a compound
    offer that competes with the single ones. ``coupon_stacking``: ``one_per_group`` (at most
    one coupon per stacking group) or ``single`` (one coupon per basket). ``coupons_on_flagged``:
    whether coupons may discount 特价/限量/促销 items (a coupon may override it).
    """

    stacking: Stacking = "best_single"
    multiply_kinds: frozenset[str] = frozenset({"member_day", "birthday", "tier"})
    coupon_stacking: CouponStacking = "one_per_group"
    coupons_on_flagged: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "multiply_kinds", frozenset(self.multiply_kinds))
        if self.stacking not in get_args(Stacking):
            raise PricingError("invalid_policy", "stacking", f"未知的叠加方式：{self.stacking}")
        if self.coupon_stacking not in get_args(CouponStacking):
            raise PricingError("invalid_policy", "coupon_stacking", "未知的用券方式")
        if not self.multiply_kinds <= set(RULE_KINDS) - {"member_price"}:
            raise PricingError("invalid_policy", "multiply_kinds", "只有折扣率规则可以相乘")


DEFAULT_POLICY = PricingPolicy()


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, kw_only=True)
class Discount:
    """One stored discount on one line: what, how much, why, and who pays for it."""

    kind: str
    amount: Decimal
    reason: str
    funded_by: str
    rule_id: str | int | None = None
    coupon_code: str | None = None
    coupon_template_id: str | int | None = None
    rate: Decimal | None = None
    points_funded: bool = False
    legal_basis: str = ""

    @property
    def is_coupon(self) -> bool:
        """Whether the row comes from a coupon (as opposed to a member discount)."""
        return self.kind == "coupon"


@dataclass(frozen=True, kw_only=True)
class PricedLine:
    """A priced line: ``original − sum(discounts) == net``."""

    index: int
    item: Item
    quantity: int
    original: Decimal
    discounts: tuple[Discount, ...]
    net: Decimal

    @property
    def discount_total(self) -> Decimal:
        """All discounts on the line."""
        return sum((d.amount for d in self.discounts), ZERO)

    @property
    def member_discount(self) -> Decimal:
        """Member discounts (member price, base, member day, birthday, tier)."""
        return sum((d.amount for d in self.discounts if not d.is_coupon), ZERO)

    @property
    def coupon_discount(self) -> Decimal:
        """Coupon shares on the line."""
        return sum((d.amount for d in self.discounts if d.is_coupon), ZERO)

    @property
    def points_funded_discount(self) -> Decimal:
        """Shares of points-funded coupons (already off the net; never earn points)."""
        return sum((d.amount for d in self.discounts if d.points_funded), ZERO)


@dataclass(frozen=True, kw_only=True)
class AppliedCoupon:
    """A coupon that was used: ``amount`` was split over the eligible lines.

    ``capped`` is True when the coupon's face value (``face_amount``) exceeded what was left
    on the eligible lines (``eligible_amount``), so only ``amount`` was used.
    """

    code: str
    template_id: str | int | None
    amount: Decimal
    face_amount: Decimal
    eligible_amount: Decimal
    capped: bool
    funded_by: str
    points_funded: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class RejectedCoupon:
    """A coupon that was not used, with a stable ``reason_code`` and a Chinese message."""

    code: str
    reason_code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class PricedBasket:
    """The priced basket: lines, totals, coupons used and refused."""

    day: dt.date
    member_priced: bool
    lines: tuple[PricedLine, ...]
    original: Decimal
    discount_total: Decimal
    net: Decimal
    coupons_applied: tuple[AppliedCoupon, ...]
    coupons_rejected: tuple[RejectedCoupon, ...]

    @property
    def member_discount_total(self) -> Decimal:
        """Member discounts over all lines."""
        return sum((line.member_discount for line in self.lines), ZERO)

    @property
    def coupon_discount_total(self) -> Decimal:
        """Coupon discounts over all lines."""
        return sum((line.coupon_discount for line in self.lines), ZERO)

    def discounts_by_funder(self) -> dict[str, Decimal]:
        """Discount totals per ``funded_by`` (hq / store / vendor …) for cost attribution."""
        totals: dict[str, Decimal] = {}
        for line in self.lines:
            for d in line.discounts:
                totals[d.funded_by] = totals.get(d.funded_by, ZERO) + d.amount
        return totals


# --------------------------------------------------------------------------- legal helpers


def gift_incentive_allowed(item: Item) -> bool:
    """Whether ``item`` may be given away as a purchase incentive (赠品).

    False for Rx and 甲类OTC medicines (see ``GIFT_INCENTIVE_LEGAL_BASIS``).
    """
    return item.item_class not in GIFT_BANNED_CLASSES


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class _Offer:
    """A candidate member discount for one line: one row, or several for a compound rate."""

    amount: Decimal
    rows: tuple[Discount, ...]
    order: tuple[int, int]  # tie-break: kind position, rule position


def _rate_row(rule: DiscountRule, amount: Decimal, rate: Decimal) -> Discount:
    return Discount(
        kind=rule.kind,
        amount=amount,
        reason=f"{rule.label} {rate_label(rate)}",
        funded_by=rule.funded_by,
        rule_id=rule.id,
        rate=rate,
        legal_basis=rule.legal_basis,
    )


def _single_offer(rule: DiscountRule, position: int, line: Line) -> _Offer | None:
    item = line.item
    original = item.shelf_price * line.quantity
    if rule.kind == "member_price":
        if item.member_price is None or item.member_price >= item.shelf_price:
            return None
        amount = (item.shelf_price - item.member_price) * line.quantity
        row = Discount(
            kind=rule.kind,
            amount=amount,
            reason=f"{rule.label} {format_cny(item.member_price)}",
            funded_by=rule.funded_by,
            rule_id=rule.id,
            legal_basis=rule.legal_basis,
        )
    else:
        assert rule.rate is not None
        amount = to_money(original * (1 - rule.rate))
        row = _rate_row(rule, amount, rule.rate)
    if amount <= 0:
        return None
    return _Offer(amount, (row,), (RULE_KINDS.index(rule.kind), position))


def _compound_offer(
    applicable: list[tuple[int, DiscountRule]], line: Line, kinds: frozenset[str]
) -> _Offer | None:
    """The best rate of each kind in ``kinds`` multiplied together, rounded once.

    The total is ``to_money(original × (1 − r1 × r2 …))``; it is attributed to the rules in
    kind order by cumulative rounding so the rows add up to the total exactly.
    """
    best: dict[str, tuple[int, DiscountRule]] = {}
    for position, rule in applicable:
        if rule.kind not in kinds:
            continue
        assert rule.rate is not None
        current = best.get(rule.kind)
        if current is None or rule.rate < current[1].rate:  # type: ignore[operator]
            best[rule.kind] = (position, rule)
    if len(best) < 2:
        return None
    original = line.item.shelf_price * line.quantity
    rows: list[Discount] = []
    cumulative_rate = Decimal(1)
    attributed = ZERO
    for kind in RULE_KINDS:
        if kind not in best:
            continue
        rule = best[kind][1]
        assert rule.rate is not None
        cumulative_rate *= rule.rate
        cumulative = to_money(original * (1 - cumulative_rate))
        amount = cumulative - attributed
        attributed = cumulative
        if amount > 0:
            rows.append(_rate_row(rule, amount, rule.rate))
    if attributed <= 0:
        return None
    # Ties with a single offer go to the single one (fewer rows on the receipt).
    return _Offer(attributed, tuple(rows), (len(RULE_KINDS), 0))


def _member_discounts(
    line: Line,
    member: Member,
    rules: Sequence[DiscountRule],
    policy: PricingPolicy,
    day: dt.date,
) -> tuple[Discount, ...]:
    applicable = [(i, r) for i, r in enumerate(rules) if r.applies(line.item, member, day)]
    offers = [o for i, r in applicable if (o := _single_offer(r, i, line)) is not None]
    if policy.stacking == "multiply":
        compound = _compound_offer(applicable, line, policy.multiply_kinds)
        if compound is not None:
            offers.append(compound)
    if not offers:
        return ()
    best = min(offers, key=lambda o: (-o.amount, o.order))
    return best.rows


def _coupon_eligible(coupon: Coupon, item: Item, policy: PricingPolicy) -> bool:
    on_flagged = (
        policy.coupons_on_flagged
        if coupon.applies_to_flagged is None
        else coupon.applies_to_flagged
    )
    if item.flagged and not on_flagged:
        return False
    return coupon.scope.contains(item)


def _coupon_face(coupon: Coupon, remaining: Decimal) -> Decimal:
    """What the coupon is worth on ``remaining`` before capping at ``remaining``."""
    if coupon.kind == "amount_off":
        assert coupon.value is not None
        return coupon.value
    assert coupon.rate is not None
    face = to_money(remaining * (1 - coupon.rate))
    return face if coupon.max_off is None else min(face, coupon.max_off)


def _refusal(
    coupon: Coupon,
    *,
    eligible: list[int],
    after_member: list[Decimal],
    remaining: Decimal,
    is_member: bool,
    policy: PricingPolicy,
    seen_codes: set[str],
    groups_used: dict[str, str],
) -> tuple[str, str] | None:
    """``(reason_code, Chinese message)`` when the coupon cannot be used, else ``None``."""
    if coupon.code in seen_codes:
        return "duplicate_code", "同一张券不能重复使用"
    if coupon.members_only and not is_member:
        return "member_required", "该券仅限会员使用"
    if policy.coupon_stacking == "single" and groups_used:
        return "stacking_conflict", f"每单限用一张券，已使用券 {next(iter(groups_used.values()))}"
    if coupon.stacking_group in groups_used:
        other = groups_used[coupon.stacking_group]
        return "stacking_conflict", f"与已使用的券 {other} 不能同时使用（同一叠加组）"
    if not eligible:
        return "not_applicable", "购物篮中没有该券适用的商品"
    # Minimum spend counts the amount after member discounts, before any coupon, so the
    # order in which coupons are scanned does not decide whether a threshold is met.
    threshold_base = sum((after_member[i] for i in eligible), ZERO)
    if threshold_base < coupon.min_spend:
        return "min_spend_not_met", (
            f"未满足使用门槛：适用商品金额 {format_cny(threshold_base)}，"
            f"需满 {format_cny(coupon.min_spend)}"
        )
    if remaining <= 0:
        return "nothing_to_discount", "适用商品已无可抵扣金额"
    return None


def _apply_coupons(
    lines: Sequence[Line],
    coupons: Sequence[Coupon],
    policy: PricingPolicy,
    is_member: bool,
    nets: list[Decimal],
    rows: list[list[Discount]],
) -> tuple[list[AppliedCoupon], list[RejectedCoupon]]:
    """Apply the coupons in the order presented; updates ``nets`` and ``rows`` in place."""
    after_member = list(nets)
    applied: list[AppliedCoupon] = []
    rejected: list[RejectedCoupon] = []
    seen_codes: set[str] = set()
    groups_used: dict[str, str] = {}
    for coupon in coupons:
        eligible = [
            i for i, line in enumerate(lines) if _coupon_eligible(coupon, line.item, policy)
        ]
        remaining = sum((nets[i] for i in eligible), ZERO)
        refusal = _refusal(
            coupon,
            eligible=eligible,
            after_member=after_member,
            remaining=remaining,
            is_member=is_member,
            policy=policy,
            seen_codes=seen_codes,
            groups_used=groups_used,
        )
        seen_codes.add(coupon.code)
        if refusal is not None:
            code, message = refusal
            rejected.append(RejectedCoupon(code=coupon.code, reason_code=code, message=message))
            continue
        face = _coupon_face(coupon, remaining)
        amount = min(face, remaining)
        reason = coupon.label
        if amount < face:
            reason += f"（最多抵扣 {format_cny(amount)}）"
        # allocate() never gives a line more than its own net when amount ≤ sum(nets).
        for i, share in zip(eligible, allocate(amount, [nets[i] for i in eligible]), strict=True):
            if share <= 0:
                continue
            nets[i] -= share
            rows[i].append(
                Discount(
                    kind="coupon",
                    amount=share,
                    reason=reason,
                    funded_by=coupon.funded_by,
                    coupon_code=coupon.code,
                    coupon_template_id=coupon.template_id,
                    points_funded=coupon.points_funded,
                )
            )
        applied.append(
            AppliedCoupon(
                code=coupon.code,
                template_id=coupon.template_id,
                amount=amount,
                face_amount=face,
                eligible_amount=remaining,
                capped=amount < face,
                funded_by=coupon.funded_by,
                points_funded=coupon.points_funded,
                reason=reason,
            )
        )
        groups_used[coupon.stacking_group] = coupon.code
    return applied, rejected


def price_basket(
    lines: Sequence[Line],
    member: Member | None,
    rules: Sequence[DiscountRule],
    coupons: Sequence[Coupon],
    policy: PricingPolicy,
    day: dt.date,
) -> PricedBasket:
    """Price a basket for ``member`` (``None`` = walk-in) on the business date ``day``.

    Returns per line the original amount, the discount rows (member discount chosen by
    ``policy``, then coupon shares) and the net; the basket totals; the coupons applied
    (with any cap) and refused (with a code and a Chinese reason). Raises ``PricingError``
    for an empty basket.
    """
    if not lines:
        raise PricingError("empty_basket", "lines", "购物篮中没有商品")
    is_member = member_active(member)
    originals = [line.item.shelf_price * line.quantity for line in lines]
    rows: list[list[Discount]] = []
    for line in lines:
        if is_member:
            assert member is not None
            rows.append(list(_member_discounts(line, member, rules, policy, day)))
        else:
            rows.append([])
    nets = [
        orig - sum((d.amount for d in r), ZERO) for orig, r in zip(originals, rows, strict=True)
    ]
    applied, rejected = _apply_coupons(lines, coupons, policy, is_member, nets, rows)

    priced_lines = tuple(
        PricedLine(
            index=i,
            item=line.item,
            quantity=line.quantity,
            original=originals[i],
            discounts=tuple(rows[i]),
            net=nets[i],
        )
        for i, line in enumerate(lines)
    )
    original = sum(originals, ZERO)
    net = sum(nets, ZERO)
    basket = PricedBasket(
        day=day,
        member_priced=is_member,
        lines=priced_lines,
        original=original,
        discount_total=original - net,
        net=net,
        coupons_applied=tuple(applied),
        coupons_rejected=tuple(rejected),
    )
    _check_invariants(basket)
    return basket


def _check_invariants(basket: PricedBasket) -> None:
    """Cheap guard: a broken invariant must never reach a receipt or the ledger."""
    for line in basket.lines:
        if (
            line.net < 0
            or any(d.amount < 0 for d in line.discounts)
            or line.discount_total + line.net != line.original
        ):
            raise PricingError("invariant_violated", f"lines[{line.index}]", "价格计算出现不一致")
    if sum((line.net for line in basket.lines), ZERO) != basket.net:
        raise PricingError("invariant_violated", "net", "价格计算出现不一致")

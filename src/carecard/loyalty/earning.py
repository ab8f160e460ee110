"""Points earning (SPEC P-1, P-7, C-4a): pure computation from a priced basket and its tenders.

Points are earned only on the self-paid amount. The tenders are laid over the lines in a fixed,
documented order, each one pro rata by what is still unpaid on the lines it may cover
(``allocate``, whole cents):

1. Medical insurance (统筹 ``insurance_pool``, then 个人账户 ``insurance_personal``) covers
   医保-listed lines first. When it exceeds them (some cities let the personal account pay
   for unlisted items) the rest spills over the other lines pro rata.
2. ``points`` and ``stored_value`` cover only lines that earn points under the rule: C-4a says
   they never pay for excluded items (特价 …). More than those lines' unpaid amount is an error.
3. ``coupon`` tenders (paper vouchers taken as payment) cover all lines pro rata.
4. Cash, bank card, WeChat Pay and Alipay pay what is left.

A line's earnable base is its net minus its shares of non-earning tenders: insurance and points
always, plus ``rule.non_earning_tenders`` (``coupon`` by default; add ``stored_value`` for
chains that reward the top-up instead). Coupon discounts — including points-funded coupons —
are already off the net, so they never earn points either.

Rounding: base points are computed once per receipt (receipts are not combined),
``round(sum(earnable) / amount_per_point)`` by the rule's rounding (floor by default), then
split over the earning lines by largest remainder; each line's base points are multiplied by
its multiplier (SKU or most specific category × best matching member day × tier) and rounded
the same way. So with floor rounding a receipt never earns more than
``floor(earnable / amount_per_point) × max multiplier`` plus the per-receipt bonus.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Literal, Protocol, get_args

from carecard.core.errors import DomainError, FieldError
from carecard.core.money import ZERO, allocate, allocate_units, format_cny, is_money
from carecard.loyalty.rules import FLAG_TAGS, Member, Schedule, Scope, ScopedItem, matches

TenderKind = Literal[
    "cash",
    "bank_card",
    "wechat",
    "alipay",
    "insurance_pool",
    "insurance_personal",
    "stored_value",
    "coupon",
    "points",
]
TENDER_KINDS: frozenset[str] = frozenset(get_args(TenderKind))
TENDER_LABELS: dict[str, str] = {
    "cash": "现金",
    "bank_card": "银行卡",
    "wechat": "微信支付",
    "alipay": "支付宝",
    "insurance_pool": "医保统筹",
    "insurance_personal": "医保个人账户",
    "stored_value": "储值",
    "coupon": "代金券",
    "points": "积分抵现",
}
INSURANCE_TENDERS: frozenset[str] = frozenset({"insurance_pool", "insurance_personal"})
# C-4a: points and stored value never pay for excluded items.
RESTRICTED_TENDERS: frozenset[str] = frozenset({"points", "stored_value"})
# Never earn, whatever the rule says (C-4a: never on medical insurance; points pay no points).
ALWAYS_NON_EARNING: frozenset[str] = INSURANCE_TENDERS | {"points"}
SELF_PAID_TENDERS: frozenset[str] = frozenset({"cash", "bank_card", "wechat", "alipay"})
# The order tenders are laid over the lines (see the module docstring).
_TENDER_ORDER = ("insurance_pool", "insurance_personal", "points", "stored_value", "coupon")

Rounding = Literal["floor", "half_up"]
DEFAULT_EARNING_SCOPE = Scope(exclude_tags=FLAG_TAGS)
_EMPTY_MAP: Mapping[object, Decimal] = MappingProxyType({})


class EarningError(DomainError):
    """Tenders or an earning rule that cannot be used to compute points."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(
            code=code, message=message, errors=[FieldError(field, code, message)], status=422
        )
        self.field = field


# --------------------------------------------------------------------------- what we read


class EarnableItem(ScopedItem, Protocol):
    """The item facts earning needs (``checkout.engine.Item`` satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def is_insurance_listed(self) -> bool: ...


class EarnableLine(Protocol):
    """A priced line (``checkout.engine.PricedLine`` satisfies it)."""

    @property
    def index(self) -> int: ...
    @property
    def item(self) -> EarnableItem: ...
    @property
    def net(self) -> Decimal: ...
    @property
    def points_funded_discount(self) -> Decimal: ...


class EarnableBasket(Protocol):
    """A priced basket (``checkout.engine.PricedBasket`` satisfies it).

    Structural typing keeps imports one way: checkout → loyalty, never back.
    """

    @property
    def lines(self) -> Sequence[EarnableLine]: ...
    @property
    def net(self) -> Decimal: ...


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Tender:
    """A payment: ``kind`` and a Decimal ``amount`` in cents (≥ 0)."""

    kind: TenderKind
    amount: Decimal

    def __post_init__(self) -> None:
        if self.kind not in TENDER_KINDS:
            raise EarningError("invalid_tender", "kind", f"未知的支付方式：{self.kind}")
        if not is_money(self.amount) or self.amount < 0:
            raise EarningError("invalid_tender", "amount", "支付金额应为不小于 0 的两位小数")


@dataclass(frozen=True)
class DayMultiplier:
    """A points multiplier on the days ``schedule`` matches (会员日双倍积分, 生日三倍 …)."""

    name: str
    schedule: Schedule
    multiplier: Decimal


@dataclass(frozen=True, kw_only=True)
class EarningRule:
    """How a chain awards points (P-1).

    ``amount_per_point``: CNY per point (1 or 2 seen). ``scope``: which items earn (by default
    everything except 特价/限量/促销). Multipliers: ``sku_multipliers`` win over
    ``category_multipliers`` (the item's most specific category with one wins); the best
    matching ``day_multipliers`` and the member's ``tier_multipliers`` multiply in.
    ``receipt_bonus`` points are added per receipt that earns; a receipt whose earnable amount
    is below ``min_amount`` earns nothing.
    """

    id: str | int = "default"
    name: str = ""
    amount_per_point: Decimal = Decimal(1)
    rounding: Rounding = "floor"
    scope: Scope = DEFAULT_EARNING_SCOPE
    sku_multipliers: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY_MAP)
    category_multipliers: Mapping[int, Decimal] = field(default_factory=lambda: _EMPTY_MAP)
    tier_multipliers: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY_MAP)
    day_multipliers: tuple[DayMultiplier, ...] = ()
    receipt_bonus: int = 0
    min_amount: Decimal = ZERO
    non_earning_tenders: frozenset[str] = frozenset({"coupon"})

    def __post_init__(self) -> None:
        # Read-only copies: a frozen rule must not change when the caller's dict does.
        for name in ("sku_multipliers", "category_multipliers", "tier_multipliers"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "day_multipliers", tuple(self.day_multipliers))
        if not is_money(self.amount_per_point) or self.amount_per_point <= 0:
            raise EarningError("invalid_rule", "amount_per_point", "每积 1 分所需金额应大于 0")
        if self.rounding not in get_args(Rounding):
            raise EarningError("invalid_rule", "rounding", "取整方式应为 floor 或 half_up")
        multipliers = [
            *self.sku_multipliers.values(),
            *self.category_multipliers.values(),
            *self.tier_multipliers.values(),
            *(d.multiplier for d in self.day_multipliers),
        ]
        if not all(isinstance(m, Decimal) and m.is_finite() and m >= 0 for m in multipliers):
            raise EarningError("invalid_rule", "multipliers", "倍数应为不小于 0 的 Decimal")
        if isinstance(self.receipt_bonus, bool) or not isinstance(self.receipt_bonus, int):
            raise EarningError("invalid_rule", "receipt_bonus", "每单奖励积分应为整数")
        if self.receipt_bonus < 0:
            raise EarningError("invalid_rule", "receipt_bonus", "每单奖励积分不能为负")
        if not is_money(self.min_amount) or self.min_amount < 0:
            raise EarningError("invalid_rule", "min_amount", "最低金额应为不小于 0 的两位小数")
        object.__setattr__(self, "non_earning_tenders", frozenset(self.non_earning_tenders))
        unknown = self.non_earning_tenders - TENDER_KINDS
        if unknown:
            raise EarningError("invalid_rule", "non_earning_tenders", f"未知的支付方式：{unknown}")

    @property
    def label(self) -> str:
        """Chinese name, e.g. ``每2元积1分``."""
        if self.name:
            return self.name
        per = self.amount_per_point.normalize()
        return f"每{per:f}元积1分"

    @property
    def max_multiplier(self) -> Decimal:
        """The largest multiplier any line can get (an upper bound for checks and tests)."""
        item = max(
            [Decimal(1), *self.sku_multipliers.values(), *self.category_multipliers.values()]
        )
        day = max([Decimal(1), *(d.multiplier for d in self.day_multipliers)])
        tier = max([Decimal(1), *self.tier_multipliers.values()])
        return item * day * tier

    def earns_on(self, kind: str) -> bool:
        """Whether money paid with tender ``kind`` earns points."""
        return kind not in ALWAYS_NON_EARNING and kind not in self.non_earning_tenders


DEFAULT_EARNING_RULE = EarningRule()


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, kw_only=True)
class LineEarning:
    """Why a line earned what it earned (P-7): base amount → points → multiplier → exclusions.

    ``tender_shares`` lists the line's shares of the tenders other than cash/card/WeChat/
    Alipay; ``earnable_amount`` is the base the points were computed on.
    """

    index: int
    sku: str
    name: str
    net: Decimal
    tender_shares: Mapping[str, Decimal]
    points_funded_discount: Decimal
    earnable_amount: Decimal
    exclusion: str | None
    base_points: int
    multiplier: Decimal
    multiplier_parts: tuple[tuple[str, Decimal], ...]
    points: int
    text: str


@dataclass(frozen=True, kw_only=True)
class Earning:
    """Points a receipt earns: per line, the per-receipt bonus and the total."""

    rule_id: str | int
    rule_label: str
    member_earns: bool
    earnable_amount: Decimal
    base_points: int
    bonus_points: int
    lines: tuple[LineEarning, ...]
    total: int
    text: str

    @property
    def line_points(self) -> int:
        """Points from the lines, without the receipt bonus."""
        return sum(line.points for line in self.lines)


# --------------------------------------------------------------------------- computation


def _round_points(value: Decimal, rounding: Rounding) -> int:
    mode = ROUND_FLOOR if rounding == "floor" else ROUND_HALF_UP
    return int(value.to_integral_value(rounding=mode))


def _cover(
    amount: Decimal, unpaid: list[Decimal], lines: list[int]
) -> tuple[list[Decimal], Decimal]:
    """Lay ``amount`` over ``lines`` pro rata by unpaid amount; returns the shares per basket line
    and what did not fit. ``allocate`` never gives a line more than it still owes.
    """
    shares = [ZERO] * len(unpaid)
    room = sum((unpaid[i] for i in lines), ZERO)
    fitted = min(amount, room)
    if fitted > 0:
        for i, share in zip(lines, allocate(fitted, [unpaid[i] for i in lines]), strict=True):
            shares[i] = share
            unpaid[i] -= share
    return shares, amount - fitted


def _item_multiplier(rule: EarningRule, item: EarnableItem) -> tuple[str, Decimal] | None:
    if item.sku in rule.sku_multipliers:
        return "单品", rule.sku_multipliers[item.sku]
    for category_id in item.category_ids:  # most specific first
        if category_id in rule.category_multipliers:
            return "品类", rule.category_multipliers[category_id]
    return None


def _multiplier_parts(
    rule: EarningRule, item: EarnableItem, member: Member, day: dt.date
) -> tuple[tuple[str, Decimal], ...]:
    parts: list[tuple[str, Decimal]] = []
    item_part = _item_multiplier(rule, item)
    if item_part is not None:
        parts.append(item_part)
    day_matches = [d for d in rule.day_multipliers if matches(d.schedule, day, member.birthday)]
    if day_matches:
        best = max(day_matches, key=lambda d: d.multiplier)
        parts.append((best.name, best.multiplier))
    if member.tier is not None and member.tier in rule.tier_multipliers:
        parts.append((f"{member.tier} 等级", rule.tier_multipliers[member.tier]))
    return tuple(parts)


def _validate_tenders(basket: EarnableBasket, tenders: Sequence[Tender]) -> None:
    paid = sum((t.amount for t in tenders), ZERO)
    if paid != basket.net:
        raise EarningError(
            "tender_total_mismatch",
            "tenders",
            f"支付合计 {format_cny(paid)} 与应付金额 {format_cny(basket.net)} 不符",
        )


def allocate_tenders(
    basket: EarnableBasket, tenders: Sequence[Tender], rule: EarningRule
) -> list[dict[str, Decimal]]:
    """Per line, the share of each non-self-paid tender kind (order in the module docstring).

    Raises ``EarningError`` ``tender_total_mismatch`` when the tenders do not add up to the
    basket net, and ``restricted_tender_on_excluded_items`` when points or stored value would
    have to pay for items that earn no points (C-4a).
    """
    _validate_tenders(basket, tenders)
    lines = list(basket.lines)
    unpaid = [line.net for line in lines]
    everywhere = list(range(len(lines)))
    listed = [i for i in everywhere if lines[i].item.is_insurance_listed]
    earning = [i for i in everywhere if rule.scope.contains(lines[i].item)]
    totals: dict[str, Decimal] = {}
    for tender in tenders:
        totals[tender.kind] = totals.get(tender.kind, ZERO) + tender.amount
    shares: list[dict[str, Decimal]] = [{} for _ in lines]
    for kind in _TENDER_ORDER:
        amount = totals.get(kind, ZERO)
        if amount <= 0:
            continue
        if kind in INSURANCE_TENDERS:
            first, rest = _cover(amount, unpaid, listed)
            spill, _ = _cover(rest, unpaid, everywhere)
            kind_shares = [a + b for a, b in zip(first, spill, strict=True)]
        elif kind in RESTRICTED_TENDERS:
            kind_shares, rest = _cover(amount, unpaid, earning)
            if rest > 0:
                raise EarningError(
                    "restricted_tender_on_excluded_items",
                    "tenders",
                    f"{TENDER_LABELS[kind]}不能支付不参与积分的商品（特价、限量、促销等），"
                    f"超出 {format_cny(rest)}",
                )
        else:
            kind_shares, _ = _cover(amount, unpaid, everywhere)
        for i, share in enumerate(kind_shares):
            if share > 0:
                shares[i][kind] = share
    return shares


def earn_points(
    priced: EarnableBasket,
    tenders: Sequence[Tender],
    rule: EarningRule,
    member: Member | None,
    day: dt.date,
) -> Earning:
    """Points ``member`` earns for the priced basket paid with ``tenders`` on ``day``.

    Walk-ins (``None`` or ``is_member`` False) earn nothing but the tenders are still checked.
    Raises ``EarningError`` when the tenders do not add up to the basket net or points / stored
    value would pay for excluded items.
    """
    shares = allocate_tenders(priced, tenders, rule)
    earns = member is not None and member.is_member
    lines = list(priced.lines)

    earnable: list[Decimal] = []
    exclusions: list[str | None] = []
    for line, line_shares in zip(lines, shares, strict=True):
        non_earning = sum((a for k, a in line_shares.items() if not rule.earns_on(k)), ZERO)
        exclusion = "非会员" if not earns else rule.scope.exclusion(line.item)
        exclusions.append(exclusion)
        earnable.append(ZERO if exclusion else line.net - non_earning)

    earnable_total = sum(earnable, ZERO)
    qualifies = earns and earnable_total > 0 and earnable_total >= rule.min_amount
    base_total = _round_points(earnable_total / rule.amount_per_point, rule.rounding)
    if not qualifies:
        base_total = 0
    base_points = allocate_units(base_total, earnable)

    line_results: list[LineEarning] = []
    for i, line in enumerate(lines):
        parts: tuple[tuple[str, Decimal], ...] = ()
        if member is not None and earns and not exclusions[i]:
            parts = _multiplier_parts(rule, line.item, member, day)
        multiplier = Decimal(1)
        for _, m in parts:
            multiplier *= m
        points = _round_points(base_points[i] * multiplier, rule.rounding)
        line_results.append(
            LineEarning(
                index=line.index,
                sku=line.item.sku,
                name=line.item.name,
                net=line.net,
                tender_shares=MappingProxyType(dict(shares[i])),
                points_funded_discount=line.points_funded_discount,
                earnable_amount=earnable[i],
                exclusion=exclusions[i],
                base_points=base_points[i],
                multiplier=multiplier,
                multiplier_parts=parts,
                points=points,
                text=_line_text(
                    rule, line, shares[i], earnable[i], exclusions[i], base_points[i], parts, points
                ),
            )
        )
    bonus = rule.receipt_bonus if qualifies else 0
    total = sum(r.points for r in line_results) + bonus
    return Earning(
        rule_id=rule.id,
        rule_label=rule.label,
        member_earns=earns,
        earnable_amount=earnable_total,
        base_points=base_total,
        bonus_points=bonus,
        lines=tuple(line_results),
        total=total,
        text=_receipt_text(rule, earns, earnable_total, qualifies, base_total, bonus, total),
    )


# --------------------------------------------------------------------------- explanations


def _line_text(
    rule: EarningRule,
    line: EarnableLine,
    shares: Mapping[str, Decimal],
    earnable: Decimal,
    exclusion: str | None,
    base_points: int,
    parts: tuple[tuple[str, Decimal], ...],
    points: int,
) -> str:
    name = line.item.name
    if exclusion == "非会员":
        return f"{name}：非会员不积分"
    if exclusion:
        return f"{name}：不积分（{exclusion}）"
    notes = [f"实付 {format_cny(line.net)}"]
    if line.points_funded_discount > 0:
        notes.append(f"积分兑换券抵扣 {format_cny(line.points_funded_discount)} 不积分")
    notes.extend(
        f"{TENDER_LABELS[kind]} {format_cny(amount)} 不积分"
        for kind, amount in shares.items()
        if not rule.earns_on(kind)
    )
    text = f"{name}：{'，'.join(notes)} → 积分基数 {format_cny(earnable)} → {base_points} 分"
    if parts:
        factors = " × ".join(f"{m.normalize():f}（{label}）" for label, m in parts)
        text += f" × {factors} = {points} 分"
    return text


def _receipt_text(
    rule: EarningRule,
    earns: bool,
    earnable: Decimal,
    qualifies: bool,
    base_total: int,
    bonus: int,
    total: int,
) -> str:
    if not earns:
        return "非会员不积分"
    if not qualifies:
        if earnable > 0:
            minimum = format_cny(rule.min_amount)
            return f"{rule.label}：积分基数 {format_cny(earnable)} 未满 {minimum}，不积分"
        return f"{rule.label}：本单无可积分金额"
    text = f"{rule.label}：积分基数 {format_cny(earnable)} → {base_total} 分"
    if bonus:
        text += f"，每单奖励 {bonus} 分"
    return f"{text}，共 {total} 分"

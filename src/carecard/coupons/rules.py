"""Coupon rules as pure functions (V-1..V-3): codes, validity, usability, 满即送 counts, and the
template → ``checkout.engine.Coupon`` conversion. No ORM: the services feed plain values in.

Codes
    ``prefix + body + check``: an optional prefix of ``[A-Z0-9]`` (a printed batch's, e.g.
    ``XMAS``), 11 random characters and one check character, all from an alphabet without the
    look-alikes 0/O and 1/I (``CODE_ALPHABET``, 32 symbols: 32^11 ≈ 3.6 × 10^16 codes). The
    check character is Luhn mod 32 over the body — Luhn mod N needs an even N to catch every
    single mistyped character — so a clerk's typo is caught before any lookup, as are most
    swaps of two neighbours. ``normalize_code`` accepts what a till or a person types: full-width
    characters, lower case, spaces and hyphens.

Validity
    Fixed dates (``valid_from`` / ``valid_until``, inclusive) and/or ``valid_days`` after issue:
    a coupon issued on day D with ``valid_days = N`` is usable on D and the N − 1 days after
    (领券后7天内有效: issued 10 March → last day 16 March); fixed dates, when also set, bound it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from carecard.checkout import engine
from carecard.core.errors import DomainError, FieldError
from carecard.core.money import ZERO, is_money
from carecard.loyalty.rules import ITEM_CLASSES, ITEM_TAGS, Scope

# --------------------------------------------------------------------------- codes

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
BODY_LENGTH = 11
CODE_LENGTH = BODY_LENGTH + 1
PREFIX_MAX = 8
_PREFIX_RE = re.compile(rf"^[A-Z0-9]{{0,{PREFIX_MAX}}}$")
_INDEX = {ch: i for i, ch in enumerate(CODE_ALPHABET)}
_N = len(CODE_ALPHABET)


def check_char(body: str) -> str:
    """Luhn mod N check character of ``body`` (every character must be in the alphabet)."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * _INDEX[ch]
        total += addend // _N + addend % _N
        factor = 1 if factor == 2 else 2
    return CODE_ALPHABET[(_N - total % _N) % _N]


def code_checks(code: str) -> bool:
    """True when the last ``CODE_LENGTH`` characters of ``code`` carry a valid check."""
    tail = code[-CODE_LENGTH:]
    if len(tail) != CODE_LENGTH or any(ch not in _INDEX for ch in tail):
        return False
    return check_char(tail[:-1]) == tail[-1]


def generate_code(prefix: str = "") -> str:
    """A random code: ``prefix`` + 11 random symbols + check (``secrets``, not ``random``)."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(BODY_LENGTH))
    return f"{prefix}{body}{check_char(body)}"


def normalize_code(text: object) -> str:
    """A code as stored: NFKC (full-width → ASCII), upper case, no spaces or hyphens. Anything
    that is not text gives ``""``."""
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFKC", text).upper()
    return re.sub(r"[\s\-_]+", "", text)


def normalize_prefix(prefix: object) -> str | None:
    """The batch prefix in upper case, or ``None`` when it is not 0–8 letters/digits."""
    if not isinstance(prefix, str):
        return None
    prefix = normalize_code(prefix)
    return prefix if _PREFIX_RE.match(prefix) else None


# --------------------------------------------------------------------------- validity


def validity_window(
    issued_on: dt.date,
    *,
    valid_from: dt.date | None,
    valid_until: dt.date | None,
    valid_days: int | None,
) -> tuple[dt.date, dt.date]:
    """``(first, last)`` usable business dates of a coupon issued on ``issued_on``.

    Days after issue start on the issue date; template dates bound the window on both sides.
    A template with neither ``valid_until`` nor ``valid_days`` is refused by validation.
    """
    first = max(issued_on, valid_from) if valid_from else issued_on
    last: dt.date | None = None
    if valid_days:
        last = issued_on + dt.timedelta(days=valid_days - 1)
    if valid_until is not None:
        last = valid_until if last is None else min(last, valid_until)
    if last is None:
        raise ValueError("a coupon template needs valid_until or valid_days")
    return first, last


# --------------------------------------------------------------------------- usability


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """A presented code that cannot be used: ``reason_code`` is stable, ``message`` Chinese."""

    index: int
    code: str
    reason_code: str
    message: str

    @property
    def field(self) -> str:
        return f"coupons[{self.index}]"

    def as_field_error(self) -> FieldError:
        return FieldError(self.field, self.reason_code, self.message)


REASONS: dict[str, str] = {
    "invalid_code": "券码有误（校验不符），请核对",
    "unknown_code": "券码不存在",
    "duplicate_code": "同一张券不能重复使用",
    "not_owner": "该券不属于当前会员",
    "member_required": "该券仅限会员使用",
    "void": "该券已作废",
    "already_used": "该券已使用",
    "expired": "该券已过期",
    "not_yet_valid": "该券尚未到使用日期",
    "template_inactive": "该券活动已停用",
    "store_not_allowed": "该券不能在本店使用",
    "template_invalid": "该券设置有误，请联系总部",
}


def refusal(
    *,
    status: str,
    owner_id: int | None,
    member_id: int | None,
    members_only: bool,
    template_active: bool,
    valid_from: dt.date,
    valid_until: dt.date,
    store_allowed: bool,
    day: dt.date,
    redeemed_on: dt.date | None = None,
) -> tuple[str, str] | None:
    """``(reason_code, message)`` when the coupon cannot be used by ``member_id`` (``None`` =
    walk-in) on ``day`` in a store (``store_allowed``), else ``None``.

    Ownership is checked first, so someone holding another member's code learns nothing more
    about it than that it is not theirs.
    """
    if owner_id is not None and owner_id != member_id:
        if member_id is None:
            return "not_owner", "该券为会员专属，请先识别会员"
        return "not_owner", REASONS["not_owner"]
    if owner_id is None and members_only and member_id is None:
        return "member_required", REASONS["member_required"]
    if status == "void":
        return "void", REASONS["void"]
    if status == "redeemed":
        when = f"（{redeemed_on.isoformat()}）" if redeemed_on else ""
        return "already_used", f"{REASONS['already_used']}{when}"
    if status == "expired" or day > valid_until:
        return "expired", f"该券已过期（有效期至 {valid_until.isoformat()}）"
    if day < valid_from:
        return "not_yet_valid", f"该券 {valid_from.isoformat()} 起可用"
    if not template_active:
        return "template_inactive", REASONS["template_inactive"]
    if not store_allowed:
        return "store_not_allowed", REASONS["store_not_allowed"]
    return None


# --------------------------------------------------------------------------- 满即送


def purchase_count(
    amount: Decimal, *, min_amount: Decimal, quantity: int, repeat: bool, max_count: int | None
) -> int:
    """How many coupons a purchase of ``amount`` earns under a 满即送 rule.

    ``满100送1张``: ``quantity`` when ``amount ≥ min_amount``; ``每满100送1张`` (``repeat``):
    ``quantity × ⌊amount / min_amount⌋``; ``max_count`` caps it per receipt.
    """
    if amount <= 0 or amount < min_amount or quantity <= 0:
        return 0
    times = int(amount // min_amount) if repeat and min_amount > 0 else 1
    count = quantity * times
    return count if max_count is None else min(count, max_count)


# --------------------------------------------------------------------------- templates

TEMPLATE_KINDS = ("amount_off", "percent_off", "gift", "service")
MAX_AMOUNT = Decimal("100000000")  # the columns hold 10 digits, 2 after the point
_SCOPE_KEYS = frozenset(Scope.__dataclass_fields__)
_INT_SCOPE_KEYS = frozenset({"categories", "exclude_categories"})


class CouponTemplateError(DomainError):
    """A template that cannot become an engine coupon (bad scope, value or kind)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            code="validation_error",
            message="券模板设置有误，请检查标出的字段",
            errors=errors,
            status=422,
        )


def scope_from_json(data: object) -> Scope:
    """A ``Scope`` from the template's JSON (``{"skus": [...], "exclude_classes": [...]}``).

    Unknown keys, non-list values, unknown classes/tags and non-integer category ids raise
    ``CouponTemplateError`` naming ``scope.<key>``: a typo must never widen a coupon.
    """
    if data in (None, ""):
        return Scope()
    if not isinstance(data, Mapping):
        raise CouponTemplateError([FieldError("scope", "invalid", "适用范围格式有误")])
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for key, raw in data.items():
        field = f"scope.{key}"
        if key not in _SCOPE_KEYS:
            errors.append(FieldError(field, "unknown", f"未知的范围字段：{key}"))
            continue
        if not isinstance(raw, list | tuple):
            errors.append(FieldError(field, "invalid", "应为列表"))
            continue
        if key in _INT_SCOPE_KEYS:
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
                errors.append(FieldError(field, "invalid", "分类应为整数编号"))
                continue
        elif not all(isinstance(v, str) and v for v in raw):
            errors.append(FieldError(field, "invalid", "应为非空文本"))
            continue
        known = ITEM_CLASSES if "classes" in key else ITEM_TAGS if "tags" in key else None
        if known is not None and set(raw) - known:
            errors.append(FieldError(field, "unknown", f"未知的取值：{sorted(set(raw) - known)}"))
            continue
        values[key] = raw
    if errors:
        raise CouponTemplateError(errors)
    return Scope(**values)


@dataclass(frozen=True, kw_only=True)
class TemplateTerms:
    """What a coupon template says, as plain values (the model's fields)."""

    id: int | None = None
    name: str
    kind: str
    value: Decimal | None = None
    rate: Decimal | None = None
    max_off: Decimal | None = None
    min_spend: Decimal = ZERO
    scope: object = None
    stacking_group: str = "default"
    funded_by: str = "hq"
    points_funded: bool = False
    members_only: bool = True
    applies_to_flagged: bool | None = None


def _money_error(value: object, field: str, *, required: bool) -> FieldError | None:
    if value is None:
        return FieldError(field, "required", "请填写金额") if required else None
    if not is_money(value) or not 0 < value < MAX_AMOUNT:  # type: ignore[operator]
        return FieldError(field, "invalid", "金额应为大于 0 且最多两位小数")
    return None


def terms_errors(
    terms: TemplateTerms,
    *,
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
    valid_days: int | None = None,
    per_member_limit: int | None = None,
) -> list[FieldError]:
    """Every problem with a template's settings (empty when it is usable)."""
    errors: list[FieldError] = []
    if not isinstance(terms.name, str) or not terms.name.strip():
        errors.append(FieldError("name", "required", "请填写券名称"))
    if terms.kind not in TEMPLATE_KINDS:
        errors.append(FieldError("kind", "invalid", "未知的券类型"))
    elif terms.kind == "percent_off":
        rate = terms.rate
        if (
            not isinstance(rate, Decimal)
            or not rate.is_finite()
            or not 0 <= rate < 1
            or rate != rate.quantize(Decimal("0.0001"))
        ):
            errors.append(FieldError("rate", "invalid", "折扣率应为 0 到 1 之间（0.9 即 9折）"))
        if terms.value is not None:
            errors.append(FieldError("value", "not_allowed", "折扣券不设面额"))
        if error := _money_error(terms.max_off, "max_off", required=False):
            errors.append(error)
    else:
        if error := _money_error(terms.value, "value", required=True):
            errors.append(error)
        if terms.rate is not None:
            errors.append(FieldError("rate", "not_allowed", "只有折扣券设置折扣率"))
        if terms.max_off is not None:
            errors.append(FieldError("max_off", "not_allowed", "只有折扣券设置最高优惠"))
    if not is_money(terms.min_spend) or not 0 <= terms.min_spend < MAX_AMOUNT:
        errors.append(FieldError("min_spend", "invalid", "使用门槛应为不小于 0 的金额"))
    try:
        scope = scope_from_json(terms.scope)
    except CouponTemplateError as exc:
        errors.extend(exc.errors)
    else:
        if terms.kind in ("gift", "service") and not (scope.skus or scope.categories):
            errors.append(FieldError("scope.skus", "required", "礼品券、服务券须指定商品或分类"))
        if terms.kind == "gift" and scope.classes & engine.GIFT_BANNED_CLASSES:
            errors.append(FieldError("scope.classes", "gift_banned", "处方药、甲类OTC不得作为赠品"))
    if not isinstance(terms.stacking_group, str) or not terms.stacking_group.strip():
        errors.append(FieldError("stacking_group", "required", "请填写叠加组"))
    if not isinstance(terms.funded_by, str) or not terms.funded_by.strip():
        errors.append(FieldError("funded_by", "required", "请注明费用承担方"))
    for name, value in (("valid_from", valid_from), ("valid_until", valid_until)):
        if value is not None and (isinstance(value, dt.datetime) or not isinstance(value, dt.date)):
            errors.append(FieldError(name, "invalid", "日期格式有误"))
            return errors
    for name, number, text in (
        ("valid_days", valid_days, "有效天数应为正整数"),
        ("per_member_limit", per_member_limit, "每人限领应为正整数"),
    ):
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= 32767
        ):
            errors.append(FieldError(name, "invalid", text))
    if valid_until is None and not valid_days:
        errors.append(FieldError("valid_until", "required", "请设置截止日期或领取后有效天数"))
    if valid_from and valid_until and valid_from > valid_until:
        errors.append(FieldError("valid_until", "before_start", "截止日期不能早于开始日期"))
    return errors


def engine_coupon(terms: TemplateTerms, code: str) -> engine.Coupon:
    """The engine's coupon for one issued ``code`` of a template.

    ``amount_off`` → ``amount_off`` (value, min spend); ``percent_off`` → ``percent_off``
    (rate, max off); ``gift`` and ``service`` → ``amount_off`` of their value limited to their
    SKUs/categories, so the gift or the service rung up at the till is paid by the coupon up
    to its value. A gift never covers Rx or 甲类OTC (``engine.NO_GIFT_SCOPE``: 《药品流通监督管理
    办法》第二十条). Raises ``CouponTemplateError`` or ``engine.PricingError`` when the
    template's data is bad; the services turn that into a ``template_invalid`` rejection.
    """
    scope = scope_from_json(terms.scope)
    if terms.kind == "gift":
        scope = Scope(
            classes=scope.classes,
            categories=scope.categories,
            skus=scope.skus,
            tags=scope.tags,
            exclude_classes=scope.exclude_classes | engine.GIFT_BANNED_CLASSES,
            exclude_categories=scope.exclude_categories,
            exclude_skus=scope.exclude_skus,
            exclude_tags=scope.exclude_tags,
        )
    percent = terms.kind == "percent_off"
    if terms.kind not in TEMPLATE_KINDS:
        raise CouponTemplateError([FieldError("kind", "invalid", "未知的券类型")])
    return engine.Coupon(
        code=code,
        template_id=terms.id,
        name=terms.name,
        kind="percent_off" if percent else "amount_off",
        value=None if percent else terms.value,
        rate=terms.rate if percent else None,
        max_off=terms.max_off if percent else None,
        min_spend=terms.min_spend,
        scope=scope,
        stacking_group=terms.stacking_group,
        funded_by=terms.funded_by,
        points_funded=terms.points_funded,
        members_only=terms.members_only,
        applies_to_flagged=terms.applies_to_flagged,
    )


def dedupe(codes: Iterable[str]) -> list[tuple[int, str, bool]]:
    """``(index, normalized code, is_repeat)`` for each presented code, in order."""
    seen: set[str] = set()
    out = []
    for i, raw in enumerate(codes):
        code = normalize_code(raw)
        out.append((i, code, code in seen))
        seen.add(code)
    return out

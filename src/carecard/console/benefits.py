"""How the console words coupons, coupon refusals and reward windows, in the staff's language.

The coupon services and the pricing engine give each refused coupon a stable ``reason_code``
and a Chinese message with its details (a date, a threshold). A Chinese console shows that
message as it is; another language shows the reason translated here, without the details.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# Every reason code of ``coupons.rules.REASONS`` and ``checkout.engine`` (coupon refusals), and
# the till's race (another counter used the coupon between the quote and the commit).
COUPON_REASONS = {
    "invalid_code": gettext_lazy("券码有误（校验不符），请核对"),
    "unknown_code": gettext_lazy("券码不存在"),
    "duplicate_code": gettext_lazy("同一张券不能重复使用"),
    "not_owner": gettext_lazy("该券不属于当前会员"),
    "member_required": gettext_lazy("该券仅限会员使用"),
    "void": gettext_lazy("该券已作废"),
    "already_used": gettext_lazy("该券已使用"),
    "expired": gettext_lazy("该券已过期"),
    "not_yet_valid": gettext_lazy("该券尚未到使用日期"),
    "template_inactive": gettext_lazy("该券活动已停用"),
    "store_not_allowed": gettext_lazy("该券不能在本店使用"),
    "template_invalid": gettext_lazy("该券设置有误，请联系总部"),
    "stacking_conflict": gettext_lazy("与本单已使用的券不能同时使用"),
    "not_applicable": gettext_lazy("购物篮中没有该券适用的商品"),
    "min_spend_not_met": gettext_lazy("未满足使用门槛"),
    "nothing_to_discount": gettext_lazy("适用商品已无可抵扣金额"),
    "coupon_already_used": gettext_lazy("该券刚被其他收银台使用"),
}


def _chinese() -> bool:
    return (translation.get_language() or "zh-hans").startswith("zh")


def refusal_text(reason_code: str, message: str) -> str:
    """Why a coupon was refused: the service's own Chinese message (it names the date or the
    threshold), or the translated reason in another language."""
    label = COUPON_REASONS.get(reason_code)
    if _chinese() or label is None:
        return message or (str(label) if label else reason_code)
    return str(label)


def _short(amount: Decimal | None) -> str:
    """``10`` for 10.00, ``9.5`` for 9.50."""
    if amount is None:
        return ""
    text = f"{amount.quantize(Decimal('0.01'))}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def coupon_terms(template: Any) -> str:
    """What a coupon of ``template`` takes off: 满100减10, 9折（最高减20）, 价值¥30 …"""
    if template is None:
        return ""
    kind = template.kind
    if kind == "percent_off" and template.rate is not None:
        if _chinese():
            text = f"{_short(template.rate * 10)}折"
        else:
            text = _("%(p)s%% off") % {"p": _short((1 - template.rate) * 100)}
        if template.max_off:
            text += _("（最高减 ¥%(m)s）") % {"m": _short(template.max_off)}
    elif kind == "amount_off":
        text = _("减 ¥%(v)s") % {"v": _short(template.value)}
    else:
        text = _("价值 ¥%(v)s") % {"v": _short(template.value)}
    if template.min_spend and template.min_spend > 0:
        text = _("满 ¥%(m)s %(t)s") % {"m": _short(template.min_spend), "t": text}
    return text


def months_text(months: list[int]) -> str:
    """A reward's redemption window: ``11月、12月`` (empty: all year)."""
    if not months:
        return _("全年")
    names = [_("%(m)d月") % {"m": m} for m in sorted(int(m) for m in months)]
    return _("、").join(names)

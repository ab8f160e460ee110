"""Template helpers for coupons, stored value and rewards: a coupon's terms, a reward's window,
a stored-value entry's sign."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from carecard.console import benefits

register = template.Library()


@register.filter
def coupon_terms(coupon_template: Any) -> str:
    """``满 ¥100 减 ¥10``, ``9折（最高减 ¥20）``, ``价值 ¥30``."""
    return benefits.coupon_terms(coupon_template)


@register.filter
def reward_months(months: Any) -> str:
    """``11月、12月`` or ``全年``."""
    return benefits.months_text(list(months or []))


@register.filter
def money_signed(value: Any) -> str:
    """An amount with its sign: ``+500.00``, ``−20.00``."""
    try:
        amount = Decimal(value)
    except (TypeError, ValueError, ArithmeticError):
        return ""
    amount = amount.quantize(Decimal("0.01"))
    if amount > 0:
        return f"+{amount}"
    if amount < 0:
        return f"−{-amount}"
    return "0.00"

"""Template helpers for the counter, receipts and the member's points: signed points, tier
measures in their unit, progress percentages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def signed(value: Any) -> str:
    """Points with their sign: ``+47``, ``−20``, ``0``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return ""
    if number > 0:
        return f"+{number}"
    if number < 0:
        return f"−{-number}"
    return "0"


@register.filter
def measure(value: Any, basis: str) -> str:
    """A tier measure in its unit: ``4953 分``, ``¥1234.50``, ``3 次``."""
    try:
        number = Decimal(value)
    except (TypeError, ValueError, ArithmeticError):
        return ""
    if basis == "spend":
        return f"¥{number.quantize(Decimal('0.01'))}"
    whole = int(number.to_integral_value())
    if basis == "visits":
        return _("%(n)d 次") % {"n": whole}
    return _("%(n)d 分") % {"n": whole}


@register.filter
def progress_pct(progress: Any) -> int:
    """How far a member is towards the next tier, 0–100."""
    nxt = getattr(progress, "next_tier", None)
    if nxt is None or nxt.threshold <= 0:
        return 100
    return int(max(Decimal(0), min(Decimal(100), 100 * progress.measure / nxt.threshold)))


@register.filter
def neg(value: Any) -> Any:
    """``-value`` for Decimals and ints (a return's reversed points read as positive)."""
    try:
        return -value
    except TypeError:
        return value

"""Template helpers for the console: dict lookup, age, state badges, initials."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import template
from django.utils import timezone
from django.utils.translation import gettext_lazy

register = template.Library()

_CARD_BADGE = {"active": "ok", "frozen": "warn", "replaced": "grey", "cancelled": "bad"}
_MEMBER_BADGE = {"active": "ok", "pending": "info", "merged": "grey", "cancelled": "bad"}


@register.filter
def get(mapping: Any, key: str) -> Any:
    """``errors.fields|get:"phone"`` — a dict lookup with a key from the template."""
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def contains(container: Any, item: Any) -> bool:
    try:
        return item in container
    except TypeError:
        return False


@register.filter
def age(birthday: dt.date | None) -> int | str:
    if not birthday:
        return ""
    today = timezone.localdate()
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))


@register.filter
def card_badge(status: str) -> str:
    return _CARD_BADGE.get(status, "grey")


@register.filter
def member_badge(status: str) -> str:
    return _MEMBER_BADGE.get(status, "grey")


@register.filter
def initial(name: Any) -> str:
    text = str(name or "").strip()
    return text[:1].upper() if text else "?"


@register.filter
def pct_width(value: Any) -> str:
    """A CSS width between 0 and 100 %."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "0%"
    return f"{max(0.0, min(100.0, number)):.0f}%"


_CHANNELS = {
    "counter": gettext_lazy("柜台"),
    "api": gettext_lazy("收银系统"),
    "pos": gettext_lazy("收银系统"),
    "portal": gettext_lazy("会员自助"),
    "import": gettext_lazy("导入"),
}


@register.filter
def channel_label(code: str) -> str:
    label = _CHANNELS.get(code)
    return str(label) if label else code

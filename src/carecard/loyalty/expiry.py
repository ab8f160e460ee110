"""When a lot of points expires (P-3). Pure: no database."""

from __future__ import annotations

import calendar
import datetime as dt


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later; the month's last day when it is shorter (31 Jan → 28 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def lot_expires_on(policy: str, earned_on: dt.date, *, months: int = 24) -> dt.date | None:
    """The last day a lot earned on ``earned_on`` can be used, or None when it never expires.

    ``policy`` is a ``loyalty.models.ExpiryPolicy`` value: ``none``, ``year_end`` (all points
    expire on 31 Dec of the year earned), ``rolling_months`` (N months after earning) or
    ``next_year_end`` (points of year Y expire at the end of Y + 1).
    """
    if policy == "none":
        return None
    if policy == "year_end":
        return dt.date(earned_on.year, 12, 31)
    if policy == "next_year_end":
        return dt.date(earned_on.year + 1, 12, 31)
    if policy == "rolling_months":
        if months < 1:
            raise ValueError("months must be ≥ 1")
        return add_months(earned_on, months)
    raise ValueError(f"unknown expiry policy {policy!r}")

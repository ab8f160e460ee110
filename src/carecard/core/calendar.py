"""Calendar helpers: lunar ↔ solar (``lunar-python``) and business dates."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from django.utils import timezone
from lunar_python import Lunar, LunarMonth


class InvalidLunarDate(ValueError):
    pass


@lru_cache(maxsize=65536)  # lunar-python recomputes a whole year on each cache miss
def lunar_to_solar(year: int, month: int, day: int, *, leap: bool = False) -> dt.date:
    """Solar date of a lunar date; ``leap`` selects the leap month (闰月)."""
    lunar_month = -month if leap else month
    if not 1 <= month <= 12 or not 1 <= day <= 30:
        raise InvalidLunarDate(f"{year}-{month}-{day}")
    lm = LunarMonth.fromYm(year, lunar_month)
    if lm is None or day > lm.getDayCount():
        raise InvalidLunarDate(f"{year}-{'闰' if leap else ''}{month}-{day}")
    solar = Lunar.fromYmd(year, lunar_month, day).getSolar()
    try:
        return dt.date(solar.getYear(), solar.getMonth(), solar.getDay())
    except ValueError as exc:  # lunar year 0, or a date past 9999-12-31
        raise InvalidLunarDate(f"{year}-{month}-{day}") from exc


def solar_to_lunar(day: dt.date) -> tuple[int, int, int, bool]:
    """(lunar year, month, day, is leap month) of a solar date."""
    lunar = Lunar.fromDate(dt.datetime(day.year, day.month, day.day))  # noqa: DTZ001
    month = lunar.getMonth()
    return lunar.getYear(), abs(month), lunar.getDay(), month < 0


def lunar_label(day: dt.date) -> str:
    lunar = Lunar.fromDate(dt.datetime(day.year, day.month, day.day))  # noqa: DTZ001
    return f"{lunar.getMonthInChinese()}月{lunar.getDayInChinese()}"


def business_date(now: dt.datetime | None = None) -> dt.date:
    """The local (Asia/Shanghai by default) date of an instant."""
    return timezone.localdate(now or timezone.now())

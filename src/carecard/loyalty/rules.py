"""Who and when a loyalty rule applies to: schedules (member days, birthdays) and item scopes.

Pure domain code (no ORM). The checkout pricing engine and points earning both use it:

- ``Schedule`` + ``matches`` — member days by lunar or solar day of month, weekday, fixed date,
  birthday day or month, within optional effective dates (SPEC C-3, P-1).
- ``BirthdayInfo`` — a member's solar birthday, or lunar birthday for members who celebrate by
  the lunar calendar (农历生日).
- ``Scope`` — which items a rule targets: item classes, categories, SKUs and flags (tags).
- ``Member`` — the member context a rule is evaluated for (``None`` means a walk-in).

Calendar edge cases, chosen so that every member gets exactly one birthday a year and a
configured day never silently disappears in a short month:

- A day of month past the end of a short month falls on that month's last day: lunar 三十 in a
  29-day lunar month is celebrated on 廿九; solar day 31 in a 30-day month on the 30th; a
  fixed date of 2月29日 and a 29 February birthday fall on 28 February in common years.
- A lunar birthday is celebrated in the regular (non-leap) lunar month every year, also when
  the member was born in a leap month (闰月) and in years that repeat the month as a leap month
  (the leap copy does not match), matching common practice.
- A lunar member's "birthday month" is the regular lunar month of the birthday (29–30 days),
  not a solar month.
"""

from __future__ import annotations

import calendar as solar_calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol, get_args

from carecard.core.calendar import InvalidLunarDate, solar_to_lunar
from carecard.core.errors import DomainError, FieldError

ScheduleKind = Literal[
    "every_day",
    "lunar_days",
    "solar_days",
    "weekdays",
    "fixed_dates",
    "birthday_day",
    "birthday_month",
]
SCHEDULE_KINDS: frozenset[str] = frozenset(get_args(ScheduleKind))

# Values of catalog.models.ItemClass, repeated here so pure code needs no Django model import
# (tests/loyalty/test_rules.py checks that the two stay equal).
ITEM_CLASS_LABELS: dict[str, str] = {
    "rx": "处方药",
    "otc_a": "甲类OTC",
    "otc_b": "乙类OTC",
    "tcm": "中药饮片",
    "health_food": "保健食品",
    "device": "医疗器械",
    "personal_care": "个护",
    "other": "其他",
}
ITEM_CLASSES: frozenset[str] = frozenset(ITEM_CLASS_LABELS)

# Item flags as tags, so a scope can include or exclude them like classes.
TAG_LABELS: dict[str, str] = {
    "special_price": "特价",
    "limited": "限量",
    "promotional": "促销",
    "insurance_listed": "医保目录",
    "ephedrine": "含麻黄碱",
}
ITEM_TAGS: frozenset[str] = frozenset(TAG_LABELS)
# 特价/限量/促销: excluded from member discounts and points unless a rule says otherwise (C-3).
FLAG_TAGS: frozenset[str] = frozenset({"special_price", "limited", "promotional"})

WEEKDAY_LABELS = ("一", "二", "三", "四", "五", "六", "日")
_LUNAR_DAY_TENS = ("初", "十", "廿", "三")
_LUNAR_DIGITS = ("", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十")
_LUNAR_TEXT_RE = re.compile(r"^\s*(\d{1,4})-(L?)(\d{1,2})-(\d{1,2})\s*$", re.IGNORECASE)


class RuleError(DomainError):
    """A rule, schedule or birthday was configured with invalid data."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(
            code=code, message=message, errors=[FieldError(field, code, message)], status=422
        )
        self.field = field


# --------------------------------------------------------------------------- birthdays


@dataclass(frozen=True)
class BirthdayInfo:
    """A member's birthday as it is celebrated: solar month/day, or lunar month/day.

    ``leap`` records a birth in a leap lunar month; it is kept for display but the birthday
    is celebrated in the regular month (see the module docstring).
    """

    month: int
    day: int
    calendar: Literal["solar", "lunar"] = "solar"
    leap: bool = False

    def __post_init__(self) -> None:
        if self.calendar not in ("solar", "lunar"):
            raise RuleError("invalid_birthday", "calendar", "生日历法只能是公历或农历")
        if not 1 <= self.month <= 12:
            raise RuleError("invalid_birthday", "month", "生日月份应为 1–12")
        max_day = 30 if self.calendar == "lunar" else solar_calendar.monthrange(2000, self.month)[1]
        if not 1 <= self.day <= max_day:
            raise RuleError("invalid_birthday", "day", f"生日日期应为 1–{max_day}")
        if self.leap and self.calendar != "lunar":
            raise RuleError("invalid_birthday", "leap", "只有农历生日才有闰月")

    @classmethod
    def from_solar_date(cls, birth_date: dt.date) -> BirthdayInfo:
        """A solar birthday from the date of birth."""
        return cls(month=birth_date.month, day=birth_date.day)

    @classmethod
    def from_lunar(cls, month: int, day: int, *, leap: bool = False) -> BirthdayInfo:
        """A lunar birthday (农历 month/day; ``leap`` for a birth in a 闰月)."""
        return cls(month=month, day=day, calendar="lunar", leap=leap)

    @classmethod
    def parse_lunar(cls, text: str) -> BirthdayInfo:
        """Parse the stored lunar birthday ``YYYY-MM-DD`` or ``YYYY-LMM-DD`` (leap month)."""
        m = _LUNAR_TEXT_RE.match(text)
        if not m:
            raise RuleError("invalid_birthday", "lunar_birthday", "农历生日格式应为 YYYY-MM-DD")
        return cls.from_lunar(int(m.group(3)), int(m.group(4)), leap=bool(m.group(2)))

    @property
    def label(self) -> str:
        """Chinese label: ``3月8日`` or ``农历闰四月初八``."""
        if self.calendar == "solar":
            return f"{self.month}月{self.day}日"
        leap = "闰" if self.leap else ""
        return f"农历{leap}{_lunar_month_name(self.month)}月{lunar_day_name(self.day)}"


def birthday_info(
    birthday: dt.date | None, *, is_lunar: bool = False, lunar_birthday: str = ""
) -> BirthdayInfo | None:
    """The ``BirthdayInfo`` of a member's stored fields (``birthday``, ``birthday_is_lunar``,
    ``lunar_birthday``); ``None`` when the birthday is unknown.

    A lunar member without a stored lunar text gets the lunar date of the solar birth date.
    """
    if is_lunar and lunar_birthday:
        return BirthdayInfo.parse_lunar(lunar_birthday)
    if birthday is None:
        return None
    if is_lunar:
        _, month, day, leap = solar_to_lunar(birthday)
        return BirthdayInfo.from_lunar(month, day, leap=leap)
    return BirthdayInfo.from_solar_date(birthday)


def is_birthday(birthday: BirthdayInfo | None, day: dt.date) -> bool:
    """True when ``day`` is the member's birthday this year (lunar or solar)."""
    if birthday is None:
        return False
    if birthday.calendar == "solar":
        return day.month == birthday.month and day.day == _clamp_solar_day(
            day.year, day.month, birthday.day
        )
    _, month, lunar_day, leap = _lunar(day)
    if leap or month != birthday.month:
        return False
    return _lunar_day_matches(day, lunar_day, birthday.day)


def is_birthday_month(birthday: BirthdayInfo | None, day: dt.date) -> bool:
    """True when ``day`` falls in the member's birthday month (lunar month for lunar members)."""
    if birthday is None:
        return False
    if birthday.calendar == "solar":
        return day.month == birthday.month
    _, month, _, leap = _lunar(day)
    return not leap and month == birthday.month


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Schedule:
    """When a rule applies. ``days`` holds lunar days (1–30), solar days (1–31) or weekdays
    (Mon=0 … Sun=6) depending on ``kind``; ``dates`` holds (month, day) pairs for
    ``fixed_dates``. ``effective_from`` / ``effective_to`` are inclusive and optional.
    """

    kind: ScheduleKind = "every_day"
    days: tuple[int, ...] = ()
    dates: tuple[tuple[int, int], ...] = ()
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", tuple(sorted(set(self.days))))
        object.__setattr__(self, "dates", tuple(sorted({(m, d) for m, d in self.dates})))
        if self.kind not in SCHEDULE_KINDS:
            raise RuleError("invalid_schedule", "kind", f"未知的日程类型：{self.kind}")
        day_range = {"lunar_days": 30, "solar_days": 31, "weekdays": 6}.get(self.kind)
        low = 0 if self.kind == "weekdays" else 1
        if day_range is not None:
            if not self.days or not all(low <= d <= day_range for d in self.days):
                raise RuleError("invalid_schedule", "days", f"日期应为 {low}–{day_range}")
        elif self.days:
            raise RuleError("invalid_schedule", "days", "该日程类型不使用日期列表")
        if self.kind == "fixed_dates":
            if not self.dates:
                raise RuleError("invalid_schedule", "dates", "固定日期不能为空")
            for month, d in self.dates:
                if not 1 <= month <= 12 or not 1 <= d <= solar_calendar.monthrange(2000, month)[1]:
                    raise RuleError("invalid_schedule", "dates", f"日期不存在：{month}月{d}日")
        elif self.dates:
            raise RuleError("invalid_schedule", "dates", "该日程类型不使用固定日期")
        if self.effective_from and self.effective_to and self.effective_from > self.effective_to:
            raise RuleError("invalid_schedule", "effective_to", "结束日期早于开始日期")

    @property
    def needs_birthday(self) -> bool:
        """Whether matching depends on the member's birthday."""
        return self.kind in ("birthday_day", "birthday_month")

    def in_effect(self, day: dt.date) -> bool:
        """Whether ``day`` lies within the effective dates."""
        if self.effective_from and day < self.effective_from:
            return False
        return not (self.effective_to and day > self.effective_to)

    @property
    def label(self) -> str:
        """Chinese description, e.g. ``每月农历初八、十八、廿八``."""
        match self.kind:
            case "every_day":
                text = "每天"
            case "lunar_days":
                text = "每月农历" + "、".join(lunar_day_name(d) for d in self.days)
            case "solar_days":
                text = "每月" + "、".join(f"{d}日" for d in self.days)
            case "weekdays":
                text = "每周" + "、".join(WEEKDAY_LABELS[d] for d in self.days)
            case "fixed_dates":
                text = "每年" + "、".join(f"{m}月{d}日" for m, d in self.dates)
            case "birthday_day":
                text = "生日当天"
            case _:
                text = "生日当月"
        if self.effective_from or self.effective_to:
            start = self.effective_from.isoformat() if self.effective_from else "…"
            end = self.effective_to.isoformat() if self.effective_to else "…"
            text += f"（{start} 至 {end}）"
        return text


EVERY_DAY = Schedule()


def matches(schedule: Schedule, day: dt.date, birthday: BirthdayInfo | None = None) -> bool:
    """Whether ``schedule`` applies on the business date ``day`` for a member with ``birthday``.

    Birthday schedules never match without a birthday (walk-ins, unknown birthdays).
    """
    if not schedule.in_effect(day):
        return False
    match schedule.kind:
        case "every_day":
            return True
        case "lunar_days":
            lunar_day = _lunar(day)[2]
            return any(_lunar_day_matches(day, lunar_day, d) for d in schedule.days)
        case "solar_days":
            return any(day.day == _clamp_solar_day(day.year, day.month, d) for d in schedule.days)
        case "weekdays":
            return day.weekday() in schedule.days
        case "fixed_dates":
            return any(
                day.month == m and day.day == _clamp_solar_day(day.year, m, d)
                for m, d in schedule.dates
            )
        case "birthday_day":
            return is_birthday(birthday, day)
        case _:
            return is_birthday_month(birthday, day)


def lunar_day_name(day: int) -> str:
    """初一 … 初十, 十一 … 十九, 二十, 廿一 … 廿九, 三十."""
    if not 1 <= day <= 30:
        raise InvalidLunarDate(str(day))
    if day == 10:
        return "初十"
    if day == 20:
        return "二十"
    if day == 30:
        return "三十"
    return _LUNAR_DAY_TENS[day // 10] + _LUNAR_DIGITS[day % 10]


def _lunar_month_name(month: int) -> str:
    return {1: "正", 11: "冬", 12: "腊"}.get(month) or _LUNAR_DIGITS[month]


@lru_cache(maxsize=4096)  # lunar-python takes ~2 ms per conversion; business dates repeat
def _lunar(day: dt.date) -> tuple[int, int, int, bool]:
    return solar_to_lunar(day)


def _is_last_lunar_day(day: dt.date) -> bool:
    return _lunar(day + dt.timedelta(days=1))[2] == 1


def _lunar_day_matches(day: dt.date, lunar_day: int, wanted: int) -> bool:
    """Day ``wanted`` of the lunar month, falling on 廿九 when the month has only 29 days."""
    if lunar_day == wanted:
        return True
    return wanted == 30 and lunar_day == 29 and _is_last_lunar_day(day)


def _clamp_solar_day(year: int, month: int, day: int) -> int:
    return min(day, solar_calendar.monthrange(year, month)[1])


# --------------------------------------------------------------------------- scopes


class ScopedItem(Protocol):
    """What a scope needs to know about an item (``checkout.engine.Item`` satisfies it)."""

    @property
    def sku(self) -> str: ...
    @property
    def item_class(self) -> str: ...
    @property
    def category_ids(self) -> tuple[int, ...]: ...
    @property
    def tags(self) -> frozenset[str]: ...


def _frozen(values: Iterable[object]) -> frozenset[object]:
    return frozenset(values)


@dataclass(frozen=True)
class Scope:
    """Which items a rule targets.

    An item is in scope when it matches *any* non-empty include set (classes, categories,
    SKUs, tags) — or every item when all include sets are empty — and matches *no* exclude
    set: exclusions win. ``category_ids`` of an item are its category and all ancestors, so
    naming a parent category covers the whole subtree.
    """

    classes: frozenset[str] = frozenset()
    categories: frozenset[int] = frozenset()
    skus: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    exclude_classes: frozenset[str] = frozenset()
    exclude_categories: frozenset[int] = frozenset()
    exclude_skus: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Accept any iterable (lists, tuples) from callers; store frozensets.
        for name in self.__dataclass_fields__:
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        for name in ("classes", "exclude_classes"):
            unknown = getattr(self, name) - ITEM_CLASSES
            if unknown:
                raise RuleError("invalid_scope", name, f"未知的商品类别：{sorted(unknown)}")
        for name in ("tags", "exclude_tags"):
            unknown = getattr(self, name) - ITEM_TAGS
            if unknown:
                raise RuleError("invalid_scope", name, f"未知的商品标记：{sorted(unknown)}")

    def exclusion(self, item: ScopedItem) -> str | None:
        """``None`` when ``item`` is in scope, else the Chinese reason it is not."""
        if item.sku in self.exclude_skus:
            return "该商品不参与"
        if item.item_class in self.exclude_classes:
            return f"{ITEM_CLASS_LABELS.get(item.item_class, item.item_class)}不参与"
        if self.exclude_categories.intersection(item.category_ids):
            return "该分类不参与"
        excluded_tags = self.exclude_tags & item.tags
        if excluded_tags:
            return "、".join(TAG_LABELS[t] for t in sorted(excluded_tags)) + "商品不参与"
        includes = (self.classes, self.categories, self.skus, self.tags)
        if not any(includes):
            return None
        if (
            item.item_class in self.classes
            or self.categories.intersection(item.category_ids)
            or item.sku in self.skus
            or self.tags & item.tags
        ):
            return None
        return "不在适用范围内"

    def contains(self, item: ScopedItem) -> bool:
        """Whether ``item`` is in scope."""
        return self.exclusion(item) is None


ALL_ITEMS = Scope()


# --------------------------------------------------------------------------- member context


@dataclass(frozen=True)
class Member:
    """The member a basket is priced or earned for. A walk-in is ``None`` (or ``is_member``
    False, e.g. a card that is frozen): no member discounts, no points.
    """

    is_member: bool = True
    tier: str | None = None
    birthday: BirthdayInfo | None = None


def member_active(member: Member | None) -> bool:
    """True for a member whose benefits apply; False for a walk-in."""
    return member is not None and member.is_member

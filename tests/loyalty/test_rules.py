"""Member-day schedules, birthdays (solar and lunar) and item scopes. Pure: no database."""

import datetime as dt

import pytest

from carecard.core.calendar import lunar_to_solar, solar_to_lunar
from carecard.loyalty.rules import (
    ITEM_CLASSES,
    BirthdayInfo,
    RuleError,
    Schedule,
    Scope,
    birthday_info,
    is_birthday,
    is_birthday_month,
    lunar_day_name,
    matches,
)

D = dt.date


def days_of(year: int):
    day = D(year, 1, 1)
    while day.year == year:
        yield day
        day += dt.timedelta(days=1)


# --------------------------------------------------------------------------- schedules

WANGQU_MEMBER_DAYS = Schedule("lunar_days", (8, 18, 28))  # 初八/十八/廿八


def test_lunar_member_days_known_dates_2026():
    # Spring Festival 2026 is 17 Feb, so 正月初八 / 十八 / 廿八 fall on 24 Feb, 6 and 16 Mar.
    for day in (D(2026, 2, 24), D(2026, 3, 6), D(2026, 3, 16)):
        assert matches(WANGQU_MEMBER_DAYS, day)
    for day in (D(2026, 2, 23), D(2026, 2, 25), D(2026, 3, 8), D(2026, 3, 18)):
        assert not matches(WANGQU_MEMBER_DAYS, day)


def test_lunar_member_days_agree_with_the_calendar_all_year():
    expected = [day for day in days_of(2026) if solar_to_lunar(day)[2] in (8, 18, 28)]
    found = [day for day in days_of(2026) if matches(WANGQU_MEMBER_DAYS, day)]
    assert found == expected
    assert len(found) == 37  # three a lunar month, 2026 spans parts of 13 lunar months
    assert found[:3] == [D(2026, 1, 6), D(2026, 1, 16), D(2026, 1, 26)]


def test_lunar_day_30_falls_on_29_in_a_short_month():
    thirtieth = Schedule("lunar_days", (30,))
    # Lunar 2026 二月 has 29 days: 二月廿九 = 16 Apr 2026 is its last day.
    assert lunar_to_solar(2026, 2, 29) == D(2026, 4, 16)
    assert matches(thirtieth, D(2026, 4, 16))
    # 2027 二月 has 30 days: the 30th matches, the 29th does not.
    assert matches(thirtieth, lunar_to_solar(2027, 2, 30))
    assert not matches(thirtieth, lunar_to_solar(2027, 2, 29))
    # Exactly once in every lunar month of 2026.
    assert sum(matches(thirtieth, day) for day in days_of(2026)) == 12


def test_solar_days_and_short_months():
    sched = Schedule("solar_days", (1, 11, 21))
    assert [d.day for d in days_of(2026) if d.month == 3 and matches(sched, d)] == [1, 11, 21]
    month_end = Schedule("solar_days", (31,))
    assert matches(month_end, D(2026, 4, 30))
    assert matches(month_end, D(2026, 2, 28))
    assert not matches(month_end, D(2026, 3, 30))
    assert matches(month_end, D(2026, 3, 31))


def test_weekdays_sunday():
    sunday = Schedule("weekdays", (6,))
    assert matches(sunday, D(2026, 3, 1))
    assert not matches(sunday, D(2026, 3, 2))
    assert sum(matches(sunday, d) for d in days_of(2026)) == 52


def test_fixed_dates_and_feb_29():
    womens_day = Schedule("fixed_dates", dates=((3, 8),))
    assert matches(womens_day, D(2026, 3, 8))
    assert not matches(womens_day, D(2026, 4, 8))
    leap_day = Schedule("fixed_dates", dates=((2, 29),))
    assert matches(leap_day, D(2026, 2, 28))
    assert matches(leap_day, D(2028, 2, 29))
    assert not matches(leap_day, D(2028, 2, 28))


def test_effective_dates_are_inclusive():
    sched = Schedule(effective_from=D(2026, 1, 1), effective_to=D(2026, 6, 30))
    assert not matches(sched, D(2025, 12, 31))
    assert matches(sched, D(2026, 1, 1))
    assert matches(sched, D(2026, 6, 30))
    assert not matches(sched, D(2026, 7, 1))


def test_birthday_schedules_need_a_birthday():
    assert not matches(Schedule("birthday_day"), D(2026, 3, 8), None)
    assert not matches(Schedule("birthday_month"), D(2026, 3, 8), None)
    bday = BirthdayInfo.from_solar_date(D(1980, 3, 8))
    assert matches(Schedule("birthday_day"), D(2026, 3, 8), bday)
    assert not matches(Schedule("birthday_day"), D(2026, 3, 9), bday)
    assert matches(Schedule("birthday_month"), D(2026, 3, 31), bday)
    assert not matches(Schedule("birthday_month"), D(2026, 4, 1), bday)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "monthly"}, "kind"),
        ({"kind": "lunar_days"}, "days"),
        ({"kind": "lunar_days", "days": (31,)}, "days"),
        ({"kind": "solar_days", "days": (0,)}, "days"),
        ({"kind": "weekdays", "days": (7,)}, "days"),
        ({"kind": "every_day", "days": (1,)}, "days"),
        ({"kind": "fixed_dates"}, "dates"),
        ({"kind": "fixed_dates", "dates": ((2, 30),)}, "dates"),
        ({"kind": "birthday_day", "dates": ((2, 1),)}, "dates"),
        ({"effective_from": D(2026, 2, 1), "effective_to": D(2026, 1, 1)}, "effective_to"),
    ],
)
def test_invalid_schedules_are_refused_with_a_field(kwargs, field):
    with pytest.raises(RuleError) as exc:
        Schedule(**kwargs)
    assert exc.value.code == "invalid_schedule"
    assert exc.value.field == field


def test_schedule_labels():
    assert WANGQU_MEMBER_DAYS.label == "每月农历初八、十八、廿八"
    assert Schedule("solar_days", (21, 1, 11)).label == "每月1日、11日、21日"
    assert Schedule("weekdays", (6,)).label == "每周日"
    assert Schedule("fixed_dates", dates=((3, 8),)).label == "每年3月8日"
    assert Schedule().label == "每天"
    assert Schedule("birthday_day").label == "生日当天"
    assert Schedule(effective_from=D(2026, 1, 1)).label == "每天（2026-01-01 至 …）"
    assert [lunar_day_name(d) for d in (1, 10, 11, 20, 21, 29, 30)] == [
        "初一",
        "初十",
        "十一",
        "二十",
        "廿一",
        "廿九",
        "三十",
    ]


# --------------------------------------------------------------------------- birthdays


def test_feb_29_birthday_is_celebrated_on_feb_28_in_common_years():
    bday = BirthdayInfo.from_solar_date(D(2000, 2, 29))
    assert is_birthday(bday, D(2026, 2, 28))
    assert not is_birthday(bday, D(2026, 3, 1))
    assert is_birthday(bday, D(2028, 2, 29))
    assert not is_birthday(bday, D(2028, 2, 28))
    assert sum(is_birthday(bday, d) for d in days_of(2026)) == 1


def test_lunar_birthday_moves_with_the_lunar_calendar():
    bday = BirthdayInfo.from_lunar(6, 10)
    assert is_birthday(bday, D(2026, 7, 23))  # 2026 六月初十
    assert not is_birthday(bday, D(2025, 7, 23))
    # 2025 has a leap 六月: only the regular month counts, once a year.
    assert is_birthday(bday, D(2025, 7, 4))
    assert not is_birthday(bday, lunar_to_solar(2025, 6, 10, leap=True))
    assert [d for d in days_of(2025) if is_birthday(bday, d)] == [D(2025, 7, 4)]


def test_leap_month_birthday_is_celebrated_in_the_regular_month():
    bday = BirthdayInfo.from_lunar(6, 10, leap=True)
    assert bday.label == "农历闰六月初十"
    assert is_birthday(bday, D(2026, 7, 23))
    assert is_birthday(bday, D(2025, 7, 4))
    assert not is_birthday(bday, D(2025, 8, 3))


def test_lunar_birthday_on_the_30th_in_a_29_day_month():
    bday = BirthdayInfo.from_lunar(2, 30)
    assert is_birthday(bday, D(2026, 4, 16))  # 2026 二月 has 29 days → 廿九
    assert [d for d in days_of(2026) if is_birthday(bday, d)] == [D(2026, 4, 16)]
    assert [d for d in days_of(2027) if is_birthday(bday, d)] == [lunar_to_solar(2027, 2, 30)]


def test_lunar_birthday_month_is_the_lunar_month():
    bday = BirthdayInfo.from_lunar(4, 12)
    # 2026 四月 runs from 17 May to 14 Jun (29 days)
    assert is_birthday_month(bday, D(2026, 5, 17))
    assert is_birthday_month(bday, D(2026, 6, 14))
    assert not is_birthday_month(bday, D(2026, 5, 16))
    assert not is_birthday_month(bday, D(2026, 6, 15))
    assert sum(is_birthday_month(bday, d) for d in days_of(2026)) == 29


def test_birthday_info_from_member_fields():
    assert birthday_info(None) is None
    assert birthday_info(D(1980, 5, 26)) == BirthdayInfo(month=5, day=26)
    lunar = birthday_info(D(1980, 5, 26), is_lunar=True, lunar_birthday="1980-L04-12")
    assert lunar == BirthdayInfo(month=4, day=12, calendar="lunar", leap=True)
    # lunar member without a stored lunar text: converted from the solar birth date
    assert birthday_info(D(1980, 5, 26), is_lunar=True) == BirthdayInfo.from_lunar(4, 13)
    assert BirthdayInfo.from_lunar(1, 8).label == "农历正月初八"
    with pytest.raises(RuleError):
        BirthdayInfo.parse_lunar("四月十二")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"month": 13, "day": 1},
        {"month": 2, "day": 30},
        {"month": 4, "day": 31, "calendar": "lunar"},
        {"month": 4, "day": 1, "leap": True},
        {"month": 4, "day": 1, "calendar": "julian"},
    ],
)
def test_invalid_birthdays(kwargs):
    with pytest.raises(RuleError) as exc:
        BirthdayInfo(**kwargs)
    assert exc.value.code == "invalid_birthday"


# --------------------------------------------------------------------------- scopes


class FakeItem:
    def __init__(self, sku="A1", item_class="otc_b", category_ids=(3, 1), tags=()):
        self.sku = sku
        self.item_class = item_class
        self.category_ids = category_ids
        self.tags = frozenset(tags)


def test_empty_scope_contains_everything():
    assert Scope().contains(FakeItem())


def test_scope_includes_are_a_union_and_excludes_win():
    scope = Scope(classes={"rx"}, categories={1}, skus={"Z9"})
    assert scope.contains(FakeItem(item_class="rx", category_ids=(8,)))
    assert scope.contains(FakeItem(category_ids=(3, 1)))  # via the ancestor category
    assert scope.contains(FakeItem(sku="Z9", category_ids=()))
    assert scope.exclusion(FakeItem(category_ids=(8,))) == "不在适用范围内"
    excluding = Scope(categories={1}, exclude_skus={"A1"})
    assert excluding.exclusion(FakeItem()) == "该商品不参与"


def test_scope_exclusion_reasons():
    assert Scope(exclude_classes={"rx"}).exclusion(FakeItem(item_class="rx")) == "处方药不参与"
    assert Scope(exclude_categories={1}).exclusion(FakeItem()) == "该分类不参与"
    flags = Scope(exclude_tags={"special_price", "limited", "promotional"})
    assert flags.exclusion(FakeItem(tags={"special_price"})) == "特价商品不参与"
    assert flags.contains(FakeItem(tags={"insurance_listed"}))
    ephedrine_only = Scope(tags={"ephedrine"})
    assert ephedrine_only.contains(FakeItem(tags={"ephedrine"}))
    assert not ephedrine_only.contains(FakeItem())


def test_scope_rejects_unknown_classes_and_tags():
    with pytest.raises(RuleError):
        Scope(classes={"drugs"})
    with pytest.raises(RuleError):
        Scope(exclude_tags={"cheap"})


def test_item_classes_match_the_catalog_choices():
    from carecard.catalog.models import ItemClass

    assert set(ItemClass.values) == ITEM_CLASSES

"""Pure generation of demo people: names, phones, ID numbers, ages, addresses, health profiles.

No database access: :func:`member_specs` turns a seed and a description of the chain into a list
of :class:`MemberSpec`, each holding the enrolment form exactly as a clerk would fill it in
(``data``) plus who enrolled it, where and when. The writers in :mod:`carecard.demo.generator`
push these through the member services or the bulk path.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from carecard.core.calendar import solar_to_lunar
from carecard.core.idcard import make_id_number
from carecard.core.phone import InvalidPhone, normalize_mobile
from carecard.demo import data as D

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Weighted:
    """Draws from weighted choices with a precomputed cumulative table."""

    def __init__(self, items: Sequence[tuple[Any, float]]) -> None:
        self.values = [v for v, _w in items]
        self.cum = list(itertools.accumulate(w for _v, w in items))

    def pick(self, rng: random.Random) -> Any:
        x = rng.random() * self.cum[-1]
        return self.values[bisect.bisect_right(self.cum, x)]


@dataclass(frozen=True)
class ZoneInfoSpec:
    """A trading-area zone as the generator sees it (store index, road, communities)."""

    store: int
    name: str
    district: str
    road: str
    communities: tuple[str, ...]
    households: int


@dataclass(frozen=True)
class StoreSpec:
    index: int
    region: str
    district: str
    opened_on: dt.date
    weight: float
    zones: tuple[ZoneInfoSpec, ...]
    staff: tuple[tuple[str, float], ...]  # (username, share of the store's enrolments)


@dataclass
class MemberSpec:
    """One enrolment: the form (``data``) and its circumstances."""

    index: int
    store: int
    staff: str  # username of the enrolling staff member
    enrolled_at: dt.datetime
    channel: str  # consent/enrolment channel: counter, wechat, event
    data: dict[str, Any]
    referrer: int | None = None  # index of an earlier member
    group: int | None = None  # index into data.GROUPS
    household_of: int | None = None  # index of the household holder
    tags: list[str] = field(default_factory=list)


def group_count(n_stores: int) -> int:
    """Corporate groups in the demo: one, or two once the chain reaches 仙霞店 (store 9)."""
    return 2 if n_stores > 8 else 1


def group_store(group: int, n_stores: int) -> int:
    """The store (index) that signed up a group: the flagship, then 仙霞店 near the second."""
    return [0, min(8, n_stores - 1)][group]


def era_of(birth_year: int) -> str:
    if birth_year <= 1962:
        return "old"
    if birth_year <= 1987:
        return "mid"
    return "young"


class NameMaker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.surnames = Weighted(D.SURNAMES)

    def given(self, gender: str, birth_year: int) -> str:
        rng = self.rng
        era = era_of(birth_year)
        key = (era, gender)
        r = rng.random()
        if r < 0.4:
            return rng.choice(D.GIVEN_NAMES[key])
        first, second = D.GIVEN_CHARS[key]
        if era == "mid" and r < 0.6:
            return rng.choice(second)
        return rng.choice(first) + rng.choice(second)

    def name(self, gender: str, birth_year: int, surname: str | None = None) -> str:
        return (surname or self.surnames.pick(self.rng)) + self.given(gender, birth_year)


class PhoneMaker:
    """Unique, valid mainland mobiles (checked with ``phonenumbers`` via normalize_mobile).

    Numbers are drawn from a pool of 7-digit segments (号段 such as 1391234), as the numbers of
    one city are: a carrier allocates segments to a city. ``segments`` sets the pool size.
    """

    def __init__(self, rng: random.Random, segments: int = 200) -> None:
        self.rng = rng
        self.prefixes = Weighted(D.PHONE_PREFIXES)
        self.size = segments
        self.segments: list[str] = []
        self.used: set[str] = set()

    def _segment(self) -> str:
        while True:
            segment = self.prefixes.pick(self.rng) + f"{self.rng.randrange(10**4):04d}"
            try:
                normalize_mobile(segment + "0000")
            except InvalidPhone:
                continue
            return segment

    def make(self) -> str:
        while True:
            if len(self.segments) < self.size:
                self.segments.append(self._segment())
            number = self.rng.choice(self.segments) + f"{self.rng.randrange(10**4):04d}"
            if number in self.used:
                continue
            normalize_mobile(number)  # the segment is valid, so is every number in it
            self.used.add(number)
            return number


def _prob(table: list[tuple[int, float]], age: int) -> float:
    for upper, p in table:
        if age <= upper:
            return p
    return table[-1][1]


def _aware(day: dt.date, rng: random.Random) -> dt.datetime:
    # Counter traffic peaks mid-morning and after work.
    hour = rng.choices(range(8, 22), weights=[2, 6, 9, 8, 5, 4, 5, 6, 7, 9, 10, 8, 5, 2])[0]
    return dt.datetime(
        day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=SHANGHAI
    )


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class MemberMaker:
    """Builds the member specs of the whole chain; every draw comes from ``rng``."""

    def __init__(
        self, rng: random.Random, stores: Sequence[StoreSpec], today: dt.date, n_groups: int
    ) -> None:
        self.rng = rng
        self.stores = stores
        self.today = today
        self.names = NameMaker(rng)
        self.phones = PhoneMaker(rng, segments=max(200, len(stores) * 250))
        self.ids: set[str] = set()
        self.ages = Weighted([((lo, hi), w) for lo, hi, w in D.AGE_BANDS])
        years_open = [max(0.5, (today - s.opened_on).days / 365.25) for s in stores]
        self.store_pick = Weighted(
            [(s.index, s.weight * years**0.5) for s, years in zip(stores, years_open, strict=True)]
        )
        self.zone_pick = {s.index: Weighted([(z, z.households) for z in s.zones]) for s in stores}
        self.region_zones: dict[str, list[ZoneInfoSpec]] = {}
        for s in stores:
            self.region_zones.setdefault(s.region, []).extend(s.zones)
        self.staff_pick = {s.index: Weighted(s.staff) for s in stores}
        self.channels = Weighted(
            [
                ("in_store", 62),
                ("new_media", 14),
                ("community", 10),
                ("referral", 8),
                ("alliance", 3),
                ("group", 3 if n_groups else 0),
            ]
        )
        self.n_groups = n_groups
        self.group_stores = [group_store(g, len(stores)) for g in range(n_groups)]
        self.by_store: dict[int, list[int]] = {s.index: [] for s in stores}
        self.card_seq = dict.fromkeys(self.by_store, 0)
        self.lunar_left = 40

    # -- single attributes ------------------------------------------------------------------

    def birthday(self) -> dt.date:
        lo, hi = self.ages.pick(self.rng)
        age_days = int((self.rng.randint(lo, hi) + self.rng.random()) * 365.25)
        return self.today - dt.timedelta(days=age_days)

    def age(self, birthday: dt.date, on: dt.date | None = None) -> int:
        on = on or self.today
        return on.year - birthday.year - ((on.month, on.day) < (birthday.month, birthday.day))

    def enrol_day(self, store: StoreSpec, birthday: dt.date) -> dt.date:
        start = max(store.opened_on, _add_years(birthday, 18))
        span = (self.today - start).days
        # Enrolments grow over the years: density rises towards the reference date.
        return start + dt.timedelta(days=int(span * self.rng.random() ** 0.6))

    def id_number(self, birthday: dt.date, gender: str, district: str) -> str:
        rng = self.rng
        while True:
            if rng.random() < 0.75:
                area = D.ID_AREAS_SHANGHAI.get(district) or rng.choice(
                    list(D.ID_AREAS_SHANGHAI.values())
                )
            else:
                area = rng.choice(D.ID_AREAS_ELSEWHERE)
            last = rng.randrange(5) * 2 + (1 if gender == "M" else 0)
            number = make_id_number(area, birthday, rng.randrange(100) * 10 + last)
            if number not in self.ids:
                self.ids.add(number)
                return number

    def address(self, store: StoreSpec) -> dict[str, str]:
        rng = self.rng
        r = rng.random()
        if r < 0.04:
            return {}
        if r < 0.08:
            district, place = rng.choice(D.OUTSIDE_ADDRESSES)
            return {
                "address": f"{D.CITY}{district}{place}{rng.randint(1, 60)}号{self._room()}",
                "province": D.PROVINCE,
                "city": D.CITY,
                "district": district,
                "community": place,
            }
        if r < 0.18 and len(self.region_zones[store.region]) > len(store.zones):
            zone = rng.choice(self.region_zones[store.region])
        else:
            zone = self.zone_pick[store.index].pick(rng)
        community = rng.choice(zone.communities)
        lane = rng.randint(1, 1200)
        return {
            "address": (
                f"{D.CITY}{zone.district}{zone.road}{lane}弄{community}"
                f"{rng.randint(1, 48)}号{self._room()}"
            ),
            "province": D.PROVINCE,
            "city": D.CITY,
            "district": zone.district,
            "community": community,
        }

    def _room(self) -> str:
        return f"{self.rng.randint(1, 18)}{self.rng.randint(1, 4):02d}室"

    def health(self, age: int, gender: str) -> dict[str, list[str]]:
        rng = self.rng
        conditions: list[str] = []
        for condition, table in D.PREVALENCE.items():
            p = _prob(table, age)
            if condition in ("diabetes", "hyperlipidaemia") and (
                "hypertension" in conditions or "diabetes" in conditions
            ):
                p *= 1.4  # metabolic conditions cluster
            elif condition == "coronary" and "hypertension" in conditions:
                p *= 1.6
            elif condition == "gout":
                p *= 1.0 if gender == "M" else 0.25
            elif condition == "osteoporosis":
                p *= 1.0 if gender == "F" else 0.2
            if rng.random() < min(p, 0.95):
                conditions.append(condition)
        allergies = [name for name, pct in D.ALLERGIES if rng.random() < pct / 100]
        history = [
            item for item, min_age, p in D.MEDICAL_HISTORY if age >= min_age and rng.random() < p
        ]
        return {
            "chronic_conditions": conditions,
            "allergies": allergies,
            "medical_history": history,
        }

    def interests(self, age: int, gender: str, conditions: list[str]) -> list[str]:
        rng = self.rng
        chances = {
            "hypertension": 0.75 if "hypertension" in conditions else (0.08 if age >= 45 else 0.0),
            "diabetes": 0.75 if "diabetes" in conditions else (0.06 if age >= 45 else 0.0),
            "elderly_care": 0.55 if age >= 60 else (0.12 if age >= 40 else 0.02),
            "bone_joint": 0.4 if age >= 55 or "osteoporosis" in conditions else 0.08,
            "maternal_infant": 0.4
            if gender == "F" and 24 <= age <= 40
            else (0.08 if 26 <= age <= 40 else 0.0),
            "beauty": 0.35 if gender == "F" and age < 50 else (0.08 if gender == "F" else 0.02),
            "weight_loss": 0.25
            if 20 <= age < 50 and gender == "F"
            else (0.15 if 28 <= age < 55 else 0.04),
            "sleep": 0.2 if age >= 40 else 0.1,
            "immunity": 0.25,
            "tcm": 0.3 if age >= 50 else 0.12,
        }
        chosen = [key for key, p in chances.items() if rng.random() < p]
        if len(chosen) > 4:  # a clerk ticks a few boxes, not the whole list
            keep = set(rng.sample(chosen, 4))
            chosen = [key for key in chosen if key in keep]
        return chosen

    def contact(self, age: int) -> tuple[list[str], str]:
        rng = self.rng
        channels = []
        if rng.random() < 0.95:
            channels.append("sms")
        if rng.random() < (0.92 if age < 65 else 0.7 if age < 75 else 0.45):
            channels.append("wechat")
        if rng.random() < (0.6 if age >= 60 else 0.15):
            channels.append("phone")
        if age < 50 and rng.random() < 0.15:
            channels.append("email")
        if not channels:
            channels.append("phone")
        if "wechat" in channels and (age < 65 or rng.random() < 0.4):
            preferred = "wechat"
        elif "sms" in channels:
            preferred = "sms"
        else:
            preferred = channels[0]
        return channels, preferred

    # -- whole members -----------------------------------------------------------------------

    def person(
        self,
        store: StoreSpec,
        *,
        gender: str | None = None,
        birthday: dt.date | None = None,
        surname: str | None = None,
    ) -> dict[str, Any]:
        """The personal part of an enrolment form (no channel, store or consents yet)."""
        rng = self.rng
        gender = gender or ("F" if rng.random() < 0.57 else "M")
        birthday = birthday or self.birthday()
        age = self.age(birthday)
        form: dict[str, Any] = {
            "name": self.names.name(gender, birthday.year, surname),
            "gender": gender,
            "birthday": birthday.isoformat(),
            "phone": self.phones.make(),
        }
        form.update(self.address(store))
        if rng.random() < 0.3:
            form["id_number"] = self.id_number(birthday, gender, form.get("district", ""))
        elif age >= 65 and rng.random() < 0.03 and self.lunar_left > 0:
            # Older customers often celebrate their lunar birthday; the form takes it as such.
            # Capped: lunar-python computes a whole lunar year (~30 ms) per conversion.
            self.lunar_left -= 1
            year, month, day, leap = solar_to_lunar(birthday)
            form["birthday_calendar"] = "lunar"
            form["lunar_birthday"] = f"{year:04d}-{'L' if leap else ''}{month:02d}-{day:02d}"
        health = self.health(age, gender)
        has_health = any(health.values())
        consent_health = rng.random() < (0.92 if has_health else 0.25)
        if consent_health:
            form.update({k: v for k, v in health.items() if v})
        form["consent_health_data"] = consent_health
        form["health_interests"] = self.interests(age, gender, health["chronic_conditions"])
        form["contact_channels"], form["preferred_channel"] = self.contact(age)
        if "email" in form["contact_channels"]:
            form["email"] = f"{rng.randint(10_000_000, 2_999_999_999)}@" + rng.choice(
                ["qq.com", "163.com", "126.com", "sina.com"]
            )
        form["consent_terms"] = True
        form["consent_marketing"] = rng.random() < 0.7
        return form

    def member(self, index: int) -> MemberSpec:
        rng = self.rng
        store = self.stores[self.store_pick.pick(rng)]
        acquisition = self.channels.pick(rng)
        group = None
        if acquisition == "group":
            group = rng.randrange(self.n_groups)
            store = self.stores[self.group_stores[group]]
        form = self.person(store)
        birthday = dt.date.fromisoformat(form["birthday"])
        day = self.enrol_day(store, birthday)
        staff = self.staff_pick[store.index].pick(rng)
        referrer = None
        if acquisition == "referral":
            earlier = self.by_store[store.index]
            if earlier:
                referrer = earlier[int(len(earlier) * rng.random() ** 0.5)]
            else:
                acquisition = "in_store"
        form["acquisition_channel"] = acquisition
        form["heard_from"] = rng.choice(D.HEARD_FROM[acquisition])
        channel = "counter"
        if acquisition == "new_media":
            channel = "wechat"
            form["campaign_code"] = f"QR-SH{store.index + 1:03d}-{staff}"[:32]
        elif acquisition == "community":
            channel = "event"
            form["campaign_code"] = f"EV-{day:%Y%m}-SH{store.index + 1:03d}"
        elif acquisition == "alliance":
            partner = rng.randrange(len(D.ALLIANCE_PARTNERS))
            form["heard_from"] = f"联盟商户-{D.ALLIANCE_PARTNERS[partner]}"
            form["campaign_code"] = f"AL{partner + 1:02d}"
        # Physical cards were the norm before the chain went digital around 2020.
        if rng.random() < (0.25 if day.year < 2020 else 0.03):
            self.card_seq[store.index] += 1
            form["card_number"] = f"2{store.index + 1:02d}{self.card_seq[store.index]:07d}"
        return MemberSpec(
            index=index,
            store=store.index,
            staff=staff,
            enrolled_at=_aware(day, rng),
            channel=channel,
            data=form,
            referrer=referrer,
            group=group,
        )

    def spouse(self, index: int, holder: MemberSpec) -> MemberSpec:
        """The holder's spouse (or adult child), living at the same address; enrolled later."""
        rng = self.rng
        store = self.stores[holder.store]
        hb = dt.date.fromisoformat(holder.data["birthday"])
        child = rng.random() < 0.2 and self.age(hb) >= 55
        if child:
            gender = "F" if rng.random() < 0.5 else "M"
            years = rng.randint(24, 32)
            surname = holder.data["name"][0] if holder.data["gender"] == "M" else None
        else:
            gender = "F" if holder.data["gender"] == "M" else "M"
            years = rng.randint(-6, 4) if gender == "F" else rng.randint(-4, 6)
            years = -years  # a wife is usually a little younger than her husband
            surname = None
        birthday = hb + dt.timedelta(days=int(years * 365.25) + rng.randint(-150, 150))
        if self.age(birthday) < 18:
            birthday = _add_years(self.today, -18) - dt.timedelta(days=rng.randint(1, 3000))
        form = self.person(store, gender=gender, birthday=birthday, surname=surname)
        for key in ("address", "province", "city", "district", "community"):
            form.pop(key, None)
            if key in holder.data:
                form[key] = holder.data[key]
        form["acquisition_channel"] = "referral" if rng.random() < 0.5 else "in_store"
        form["heard_from"] = "家人办卡" if form["acquisition_channel"] == "in_store" else "亲友推荐"
        first = max(holder.enrolled_at.date(), _add_years(birthday, 18))
        day = first + dt.timedelta(days=int((self.today - first).days * rng.random() ** 2))
        return MemberSpec(
            index=index,
            store=store.index,
            staff=self.staff_pick[store.index].pick(rng),
            enrolled_at=_aware(day, rng),
            channel="counter",
            data=form,
            referrer=holder.index if form["acquisition_channel"] == "referral" else None,
            household_of=holder.index,
            tags=["household"],
        )

    def duplicate(self, index: int, original: MemberSpec) -> MemberSpec:
        """A likely duplicate: same name and birthday, another phone, enrolled again later."""
        rng = self.rng
        store = self.stores[original.store if rng.random() < 0.5 else self.store_pick.pick(rng)]
        form = self.person(
            store,
            gender=original.data["gender"],
            birthday=dt.date.fromisoformat(original.data["birthday"]),
        )
        form["name"] = original.data["name"]
        form.pop("id_number", None)  # an ID number would be refused as an exact duplicate
        form.pop("birthday_calendar", None)
        form.pop("lunar_birthday", None)
        if rng.random() < 0.5:
            for key in ("address", "province", "city", "district", "community"):
                form.pop(key, None)
                if key in original.data:
                    form[key] = original.data[key]
        form["acquisition_channel"] = "in_store"
        form["heard_from"] = "门店推荐"
        first = max(original.enrolled_at.date(), store.opened_on)
        day = first + dt.timedelta(days=int((self.today - first).days * rng.random()))
        return MemberSpec(
            index=index,
            store=store.index,
            staff=self.staff_pick[store.index].pick(rng),
            enrolled_at=_aware(day, rng),
            channel="counter",
            data=form,
            tags=["duplicate"],
        )

    def build(self, n: int) -> list[MemberSpec]:
        rng = self.rng
        n_dupes = max(3, min(40, n // 400)) if n >= 20 else 0
        specs: list[MemberSpec] = []
        while len(specs) < n - n_dupes:
            spec = self.member(len(specs))
            specs.append(spec)
            self.by_store[spec.store].append(spec.index)
            age = self.age(dt.date.fromisoformat(spec.data["birthday"]))
            if (
                age >= 35
                and spec.data.get("address")
                and len(specs) < n - n_dupes
                and rng.random() < 0.03
            ):
                specs.append(self.spouse(len(specs), spec))
        originals = rng.sample(range(len(specs)), n_dupes) if n_dupes else []
        for original in originals:
            specs.append(self.duplicate(len(specs), specs[original]))
        # Enrol in time order, as it happened; indices are rewritten so that references
        # (referrer, household holder) always point at an earlier enrolment.
        order = sorted(specs, key=lambda s: (s.enrolled_at, s.index))
        new_index = {spec.index: i for i, spec in enumerate(order)}
        seen: dict[int, list[int]] = {s.index: [] for s in self.stores}
        for i, spec in enumerate(order):
            spec.index = i
            spec.referrer = new_index[spec.referrer] if spec.referrer is not None else None
            if spec.household_of is not None:
                spec.household_of = new_index[spec.household_of]
            if spec.referrer is not None and spec.referrer >= i:
                # The drawn referrer joined later: another earlier member of the store referred.
                earlier = seen[spec.store]
                spec.referrer = earlier[rng.randrange(len(earlier))] if earlier else None
                if spec.referrer is None:
                    spec.data["acquisition_channel"] = "in_store"
                    spec.data["heard_from"] = "门店推荐"
            seen[spec.store].append(i)
        return order


def member_specs(
    n: int, *, seed: int, stores: Sequence[StoreSpec], today: dt.date, n_groups: int
) -> list[MemberSpec]:
    """All demo members of the chain, deterministic by seed."""
    rng = random.Random(f"carecard-demo-members-{seed}")
    return MemberMaker(rng, stores, today, n_groups).build(n)

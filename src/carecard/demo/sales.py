"""Twelve months of demo sales (I-4): a deterministic plan, written through the counter or in bulk.

:func:`plan_sales` is pure: from the member specs, the catalogue and the chain's member days it
draws who buys what, where, when and how they pay — a weekly rhythm (weekends busier), member-day
and flu-season (Dec–Feb) peaks, chronic patients refilling each medicine when their supply runs
out (a little early or late, waiting for a member day, now and then bought at the hospital),
occasional shoppers led by their interests and the season, mixed tenders with medical insurance
for listed items, and about 1 % of sales returned within a few days.

:func:`write_sales` replays the plan (:meth:`SalesPlan.events`). Each sale goes either through
``checkout.services.sale_commit`` (``writer="service"``) or through :class:`BulkSalesWriter`
(``"bulk"``), which prices with the same pure engines (``price_basket``, ``earn_points``) and the
same cached counter configuration and inserts, in batches, exactly the rows ``sale_commit`` writes:
the sale, lines, discounts, tenders, points entry and lot, account, aggregates, tier, activation
under the purchase entry rule, and the yearly-spend vouchers (issued by ``coupon_issue`` itself).
The year-end expiry is ``points_expire_due`` for the service writer and its mirror for the bulk
writer (``points_expire_due`` takes a transaction per member: ~15 s for the default demo).
Returns go through ``sale_return`` in both writers; the bulk writer first writes out everything
before them and afterwards re-reads the members they changed. A test replays one plan both ways
and compares every row.

Events other than sales run through the services: :class:`PlannedReturn` is handled by
``_SERVICE_EVENTS``; another kind (a reward redemption, a stored-value top-up) is one more
planned-event class with a handler there, which returns the members it changed for the bulk
writer to re-read, and one more clause in :meth:`SalesPlan.events` to place it in time.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import itertools
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max, Model
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.catalog.models import Product
from carecard.chain.models import Staff, Store
from carecard.checkout import config
from carecard.checkout import services as counter
from carecard.checkout.engine import Item, Line, PricedBasket, price_basket
from carecard.checkout.models import (
    MemberStats,
    Sale,
    SaleDiscount,
    SaleKind,
    SaleLine,
    SaleTender,
)
from carecard.coupons import services as coupon_services
from carecard.coupons.models import Coupon, CouponTemplate, PurchaseRule
from carecard.demo.people import SHANGHAI, MemberSpec, StoreSpec, Weighted
from carecard.loyalty.earning import Tender, earn_points
from carecard.loyalty.expiry import lot_expires_on
from carecard.loyalty.models import (
    EntryKind,
    LadderStep,
    MemberTier,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsLotUse,
    Tier,
    TierBasis,
    TierChange,
)
from carecard.loyalty.rules import Member as PricingMember
from carecard.loyalty.rules import birthday_info
from carecard.loyalty.services import points_expire_due
from carecard.loyalty.tiers import Measures, earned_tier
from carecard.members.models import EntryRule, Member, MemberStatus
from carecard.members.services import policy_get

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
RETURN_RATE = 0.011  # share of sales returned (weighted towards devices and health foods)
POOL_SHARE = Decimal("0.60")  # 门诊慢特病: the pooled fund pays this share of listed items
SCOPE = "demo"  # idempotency scope of the replayed counter calls
HOURS = range(8, 22)
HOUR_WEIGHTS = [2, 6, 9, 8, 5, 4, 5, 6, 7, 9, 10, 8, 5, 2]  # as enrolments: mornings, after work
WEEKDAY = (0.92, 0.9, 0.92, 0.94, 1.0, 1.24, 1.18)  # Monday … Sunday
MEMBER_DAY_BOOST = 1.8
FLU_MONTHS = frozenset({12, 1, 2})
EARLY_TOP_UP = 7  # a patient buys every regimen that has at most this many days left
MAX_LATE = 25
DEAL_WAIT = 3  # a deal-seeking patient waits at most this long for a member day


# ---------------------------------------------------------------------------------------------
# The catalogue as the plan sees it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductInfo:
    sku: str
    name: str
    category: str  # category code, e.g. "RX-CV"
    item_class: str
    days_supply: int | None
    insurance_listed: bool


def catalogue() -> list[ProductInfo]:
    """The active products, by SKU."""
    return [
        ProductInfo(sku, name, code, item_class, days, listed)
        for sku, name, code, item_class, days, listed in Product.objects.filter(is_active=True)
        .order_by("sku")
        .values_list(
            "sku", "name", "category__code", "item_class", "days_supply", "is_insurance_listed"
        )
    ]


# Chronic regimens: condition → (generic name, weight). Every product named here is refillable
# (it has days of supply).
REGIMENS: dict[str, list[tuple[str, float]]] = {
    "hypertension": [
        ("苯磺酸氨氯地平片", 3.0),
        ("硝苯地平控释片", 2.0),
        ("缬沙坦胶囊", 2.0),
        ("厄贝沙坦片", 1.5),
        ("氯沙坦钾片", 1.0),
        ("替米沙坦片", 0.8),
        ("厄贝沙坦氢氯噻嗪片", 0.8),
        ("非洛地平缓释片", 0.8),
        ("培哚普利叔丁胺片", 0.5),
        ("贝那普利片", 0.5),
        ("琥珀酸美托洛尔缓释片", 1.0),
        ("富马酸比索洛尔片", 0.6),
        ("吲达帕胺缓释片", 0.5),
    ],
    "diabetes": [
        ("盐酸二甲双胍片", 2.5),
        ("盐酸二甲双胍缓释片", 2.0),
        ("阿卡波糖片", 2.0),
        ("格列美脲片", 1.0),
        ("格列齐特缓释片", 1.0),
        ("磷酸西格列汀片", 0.8),
        ("达格列净片", 0.8),
        ("恩格列净片", 0.5),
        ("瑞格列奈片", 0.5),
    ],
    "hyperlipidaemia": [
        ("阿托伐他汀钙片", 4.0),
        ("瑞舒伐他汀钙片", 3.0),
        ("辛伐他汀片", 0.5),
        ("匹伐他汀钙片", 0.5),
        ("非诺贝特胶囊", 0.6),
        ("依折麦布片", 0.4),
    ],
    "coronary": [
        ("阿司匹林肠溶片", 4.0),
        ("硫酸氢氯吡格雷片", 1.5),
        ("复方丹参滴丸", 1.5),
        ("单硝酸异山梨酯缓释片", 1.0),
        ("酒石酸美托洛尔片", 0.8),
    ],
    "gout": [("非布司他片", 1.0), ("别嘌醇缓释胶囊", 1.0)],
    "osteoporosis": [("碳酸钙D3片", 3.0), ("钙维生素D软胶囊", 1.0)],
    "asthma_copd": [("孟鲁司特钠片", 1.0), ("布地奈德福莫特罗吸入粉雾剂", 1.0)],
}
# How many of the patients with the condition take a daily medicine for it.
ON_THERAPY = {"gout": 0.5, "osteoporosis": 0.6, "asthma_copd": 0.6}
TEST_STRIPS = ("血糖试纸", "血糖试条")

# What an occasional visit is for: need → (category codes, product names).
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cold": (
        ("OTCA-COLD", "OTCB-COLD"),
        ("退热贴", "电子体温计", "医用外科口罩", "医用防护口罩(N95)", "维生素C泡腾片"),
    ),
    "infection": (("RX-INF",), ()),
    "stomach": (("OTCA-GI", "RX-GI"), ("健胃消食片",)),
    "allergy": (("OTCA-ALG",), ("玻璃酸钠滴眼液",)),
    "pain": (("OTCA-PAIN",), ("医用护腰带",)),
    "vitamin": (("OTCB-VIT",), ("维生素C咀嚼片",)),
    "skin": (("OTCB-EXT",), ("复方薄荷脑软膏",)),
    "first_aid": (("DEV-CARE",), ()),
    "tcm": (("TCM",), ()),
    "supplement": (("HF",), ()),
    "personal_care": (("PC",), ()),
    "monitor": ((), ("电子血压计(上臂式)", "电子血压计(腕式)", "血糖仪", "指夹式脉搏血氧仪")),
    "summer": ((), ("藿香正气水", "花露水", "风油精", "清透防晒乳", "医用酒精(75%)")),
    "bone": ((), ("氨糖软骨素钙片", "碳酸钙D3片", "钙维生素D软胶囊", "医用护腰带")),
    "baby": ((), ("叶酸片", "婴儿湿巾", "葡萄糖酸锌口服溶液", "布洛芬混悬液")),
    "beauty": ((), ("舒敏保湿特护霜", "清透防晒乳", "特安舒缓修复霜", "胶原蛋白肽粉")),
    "slim": ((), ("蛋白粉", "胶原蛋白肽粉", "益生菌粉")),
    "sleep": ((), ("褪黑素维生素B6片", "酸枣仁", "灵芝切片")),
    "immunity": ((), ("维生素C泡腾片", "蛋白粉", "益生菌粉", "灵芝孢子粉胶囊", "西洋参片")),
    "elderly": ((), ("成人纸尿裤", "护理垫", "助行拐杖(四脚)", "电子血压计(上臂式)")),
}
BASE_NEEDS = {
    "cold": 10.0,
    "infection": 3.0,
    "stomach": 9.0,
    "allergy": 5.0,
    "pain": 7.0,
    "vitamin": 8.0,
    "skin": 6.0,
    "first_aid": 7.0,
    "tcm": 5.0,
    "supplement": 5.0,
    "personal_care": 6.0,
    "monitor": 1.0,
}
INTEREST_NEEDS: dict[str, dict[str, float]] = {
    "hypertension": {"monitor": 2.0},
    "diabetes": {"monitor": 1.5},
    "elderly_care": {"elderly": 3.0, "first_aid": 2.0, "supplement": 2.0},
    "bone_joint": {"bone": 6.0},
    "maternal_infant": {"baby": 7.0},
    "beauty": {"beauty": 7.0, "personal_care": 3.0},
    "weight_loss": {"slim": 4.0},
    "sleep": {"sleep": 4.0},
    "immunity": {"immunity": 5.0, "vitamin": 2.0},
    "tcm": {"tcm": 7.0},
}
# How likely a line of each class is to come back (GSP: medicines that left the shop are
# returned only for a quality problem; devices and health foods more often).
RETURN_WEIGHT = {
    "rx": 0.15,
    "otc_a": 0.5,
    "otc_b": 0.6,
    "tcm": 0.6,
    "health_food": 2.0,
    "device": 2.5,
    "personal_care": 2.0,
    "other": 1.0,
}


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedSale:
    """One receipt: the member (spec index), the store (index), who sold, when, what, how paid.

    ``pay`` is the self-paid tender kind; ``insurance`` says how the medical-insurance-listed
    lines are paid: ``""`` (not at all), ``"personal"`` (医保个人账户) or ``"pool"`` (统筹
    ``POOL_SHARE``, the rest from the personal account). Amounts follow from the priced basket.
    """

    seq: int
    member: int
    store: int
    staff: str
    at: dt.datetime
    lines: tuple[tuple[str, int], ...]
    pay: str
    insurance: str
    kind: str  # enrol, refill, visit, birthday


@dataclass(frozen=True)
class PlannedReturn:
    """A return of some lines (``(line_no, quantity)``) of sale ``sale`` (its ``seq``) by
    ``member`` (spec index)."""

    seq: int
    sale: int
    member: int
    at: dt.datetime
    lines: tuple[tuple[int, int], ...]
    staff: str


@dataclass(frozen=True)
class PlannedExpiry:
    """The daily expiry job on ``day`` (points whose last day is before it), stamped at the
    day's start."""

    day: dt.date

    @property
    def at(self) -> dt.datetime:
        return dt.datetime.combine(self.day, dt.time(0), tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Refill:
    """A chronic refill: ``due`` is when the patient's supply of the regimen ran out; the
    purchase (``day``) is at most ``EARLY_TOP_UP`` days early or ``MAX_LATE`` (+ a wait for a
    member day) late. ``missed`` cycles before it were bought elsewhere."""

    member: int
    regimen: int
    sku: str
    quantity: int
    supply: int  # days the purchase lasts: quantity × the product's days of supply
    due: dt.date
    day: dt.date
    missed: int


@dataclass(frozen=True)
class SalesPlan:
    start: dt.date
    end: dt.date
    sales: list[PlannedSale]
    returns: list[PlannedReturn]
    expiries: list[PlannedExpiry]
    refills: list[Refill]

    def events(self) -> list[PlannedSale | PlannedReturn | PlannedExpiry]:
        """The order both writers replay: sales in time order; the returns of a week after
        the week's sales, except that a member's return always comes before that member's
        next sale, and every return before an expiry run that follows it. So each member's
        ledger is in time order, and the bulk writer stops for the services once a week
        rather than at every return."""
        returns = sorted(self.returns, key=lambda r: (r.at, r.seq))
        expiries = sorted(self.expiries, key=lambda e: e.day)
        out: list[PlannedSale | PlannedReturn | PlannedExpiry] = []
        due: list[PlannedReturn] = []
        due_members: set[int] = set()
        r = x = 0
        week = -1

        def take_until(at: dt.datetime, *, inclusive: bool) -> None:
            nonlocal r
            while r < len(returns) and (returns[r].at <= at if inclusive else returns[r].at < at):
                due.append(returns[r])
                due_members.add(returns[r].member)
                r += 1

        def release() -> None:
            out.extend(due)
            due.clear()
            due_members.clear()

        for sale in self.sales:
            while x < len(expiries) and expiries[x].at <= sale.at:
                take_until(expiries[x].at, inclusive=False)
                release()
                out.append(expiries[x])
                x += 1
            take_until(sale.at, inclusive=True)
            this_week = (sale.at.date() - self.start).days // 7
            if due and (this_week != week or sale.member in due_members):
                release()
            week = this_week
            out.append(sale)
        for expiry in expiries[x:]:
            take_until(expiry.at, inclusive=False)
            release()
            out.append(expiry)
        take_until(dt.datetime.max.replace(tzinfo=dt.UTC), inclusive=True)
        release()
        return out


class SalesCalendar:
    """Relative traffic of each day of the window: weekday × season × member day."""

    def __init__(self, start: dt.date, end: dt.date, member_day: Callable[[dt.date], bool]):
        self.start, self.end = start, end
        self.days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        self.member_days = frozenset(d for d in self.days if member_day(d))
        self.weights = [self.weight(d) for d in self.days]
        self.cum = list(itertools.accumulate(self.weights))

    def weight(self, day: dt.date) -> float:
        w = WEEKDAY[day.weekday()]
        if day.month in FLU_MONTHS:
            w *= 1.3
        elif day.month in (7, 8):
            w *= 0.92
        if day in self.member_days:
            w *= MEMBER_DAY_BOOST
        return w

    def index(self, day: dt.date) -> int:
        return (day - self.start).days

    def mass(self, lo: int, hi: int) -> float:
        """Traffic of days ``lo..hi`` (indices, inclusive)."""
        return self.cum[hi] - (self.cum[lo - 1] if lo > 0 else 0.0)

    def sample(self, rng: random.Random, lo: int, hi: int) -> dt.date:
        base = self.cum[lo - 1] if lo > 0 else 0.0
        x = base + rng.random() * self.mass(lo, hi)
        return self.days[min(hi, max(lo, bisect.bisect_right(self.cum, x)))]

    def next_member_day(self, day: dt.date, within: int) -> dt.date | None:
        for k in range(within + 1):
            d = day + dt.timedelta(days=k)
            if d in self.member_days:
                return d
        return None


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class _Visit:
    day: dt.date
    kind: str
    lines: dict[str, int] = field(default_factory=dict)
    at: dt.datetime | None = None
    refill_only: bool = True


class _Planner:
    """Draws every member's year; one ``random.Random`` per member, so a member's plan depends
    only on the seed, the member and the catalogue."""

    def __init__(
        self,
        products: Sequence[ProductInfo],
        stores: Sequence[StoreSpec],
        calendar: SalesCalendar,
        *,
        seed: int,
        birthday_deals: bool,
        return_rate: float,
    ) -> None:
        self.calendar = calendar
        self.seed = seed
        self.birthday_deals = birthday_deals
        self.return_rate = return_rate
        self.stores = stores
        self.by_name: dict[str, list[ProductInfo]] = defaultdict(list)
        for p in products:
            self.by_name[p.name].append(p)
        self.by_sku = {p.sku: p for p in products}
        self.pools: dict[str, list[ProductInfo]] = {}
        for need, (cats, names) in NEEDS.items():
            pool = [p for p in products if p.category in cats or p.name in names]
            if pool:
                self.pools[need] = pool
        self.sellers = {
            s.index: (
                [u for u, _w in s.staff if u.startswith("clerk")],
                [u for u, _w in s.staff if u.startswith("pharm")],
            )
            for s in stores
        }
        self.store_pick = Weighted([(s.index, s.weight) for s in stores])
        self.start_at = dt.datetime.combine(calendar.start, dt.time(0), tzinfo=SHANGHAI)

    # -- one member ------------------------------------------------------------------------

    def member(self, spec: MemberSpec) -> tuple[list[_Visit], list[Refill]]:
        rng = random.Random(f"carecard-demo-sales-{self.seed}-{spec.index}")
        cal = self.calendar
        if spec.enrolled_at.date() > cal.end:
            return [], []
        birthday = dt.date.fromisoformat(spec.data["birthday"])
        age = (cal.end - birthday).days // 365
        new = spec.enrolled_at >= self.start_at
        years = (cal.start - spec.enrolled_at.date()).days / 365.25
        if not new and rng.random() < (0.15 if years < 1 else 0.27 if years < 3 else 0.42):
            return [], []  # dormant all year: the store manager's call list
        first = spec.enrolled_at.date() if new else cal.start
        last = cal.end
        if rng.random() < 0.15:  # lapses during the year
            last = first + dt.timedelta(days=int((cal.end - first).days * rng.random()))
        visits: dict[dt.date, _Visit] = {}
        if new:  # 办卡即消费: the enrolment visit buys something
            visits[first] = _Visit(first, "enrol", refill_only=False)
            self._basket(rng, spec, age, first, visits[first].lines)
        refills = self._chronic(rng, spec, age, first, last, visits)
        lam = (0.75 if age < 40 else 1.05 if age < 60 else 1.3) * rng.lognormvariate(0, 0.6)
        if refills:
            lam *= 0.5  # patients add their other needs to a refill visit
        lo, hi = cal.index(first), cal.index(last)
        n = _poisson(rng, lam * cal.mass(lo, hi) / cal.cum[-1] * len(cal.days) / 365)
        for _visit in range(n):
            self._occasional(rng, spec, age, cal.sample(rng, lo, hi), "visit", visits)
        if self.birthday_deals and rng.random() < 0.35:
            for year in (cal.start.year, cal.end.year):
                try:
                    day = birthday.replace(year=year)
                except ValueError:
                    continue
                if first <= day <= last and spec.data.get("birthday_calendar") != "lunar":
                    self._occasional(rng, spec, age, day, "birthday", visits)
        for visit in visits.values():
            if visit.kind == "enrol":
                visit.at = spec.enrolled_at + dt.timedelta(minutes=rng.randint(2, 15))
            else:
                hour = rng.choices(HOURS, weights=HOUR_WEIGHTS)[0]
                visit.at = dt.datetime.combine(
                    visit.day, dt.time(hour, rng.randrange(60), rng.randrange(60)), SHANGHAI
                )
        return sorted(visits.values(), key=lambda v: v.day), refills

    def _visit(self, visits: dict[dt.date, _Visit], day: dt.date, kind: str) -> _Visit:
        visit = visits.get(day)
        if visit is None:
            visit = visits[day] = _Visit(day, kind)
        return visit

    def _occasional(
        self,
        rng: random.Random,
        spec: MemberSpec,
        age: int,
        day: dt.date,
        kind: str,
        visits: dict[dt.date, _Visit],
    ) -> None:
        visit = self._visit(visits, day, kind)
        visit.refill_only = False
        self._basket(rng, spec, age, day, visit.lines)

    def _basket(
        self, rng: random.Random, spec: MemberSpec, age: int, day: dt.date, lines: dict[str, int]
    ) -> None:
        weights = dict(BASE_NEEDS)
        if day.month in FLU_MONTHS:
            weights["cold"] *= 3.5
            weights["infection"] *= 2.0
        elif day.month in (3, 4, 5):
            weights["allergy"] *= 2.5
        elif day.month in (6, 7, 8):
            weights["summer"] = 9.0
        for interest in spec.data.get("health_interests", []):
            for need, boost in INTEREST_NEEDS.get(interest, {}).items():
                weights[need] = weights.get(need, 0.0) + boost
        if age < 40:
            weights["personal_care"] += 3.0
        needs = [n for n in weights if n in self.pools]
        for _line in range(1 if rng.random() < 0.62 else 2 if rng.random() < 0.8 else 3):
            need = rng.choices(needs, weights=[weights[n] for n in needs])[0]
            product = rng.choice(self.pools[need])
            qty = 1 if rng.random() < 0.8 else 2 if rng.random() < 0.85 else 3
            if product.item_class in ("device", "health_food") and product.days_supply is None:
                qty = 1
            lines[product.sku] = lines.get(product.sku, 0) + qty

    def _chronic(
        self,
        rng: random.Random,
        spec: MemberSpec,
        age: int,
        first: dt.date,
        last: dt.date,
        visits: dict[dt.date, _Visit],
    ) -> list[Refill]:
        conditions = [c for c in spec.data.get("chronic_conditions", []) if c in REGIMENS]
        # Most patients are prescribed at the hospital or the community health centre (长处方);
        # these are the ones who refill at the chain.
        if not conditions or rng.random() > (0.36 if age >= 65 else 0.26):
            return []
        regimens: list[tuple[ProductInfo, int]] = []
        cycle = rng.choices([28, 56, 84], weights=[4, 3, 3])[0]
        for condition in conditions:
            if rng.random() > ON_THERAPY.get(condition, 0.95):
                continue
            drugs = 2 if condition == "hypertension" and rng.random() < 0.3 else 1
            names = REGIMENS[condition]
            for name in self._distinct(rng, names, drugs):
                regimens.append(self._regimen(rng, name, cycle))
            if condition == "diabetes" and rng.random() < 0.35:
                regimens.append(self._regimen(rng, rng.choice(TEST_STRIPS), cycle))
        regimens = [r for r in regimens if r[0].days_supply]
        if not regimens:
            return []
        seeker = rng.random() < 0.35 and bool(self.calendar.member_days)
        weekender = age < 60 and rng.random() < 0.5  # comes on Saturday rather than Thu/Fri
        # Supply on hand when the year starts (or bought at enrolment).
        runout: list[dt.date] = []
        new = first == spec.enrolled_at.date() and first > self.calendar.start
        for product, qty in regimens:
            supply = qty * (product.days_supply or 1)
            if new and rng.random() < 0.7:
                runout.append(first)
            else:
                runout.append(first + dt.timedelta(days=rng.randrange(supply)))
        stopped = [False] * len(regimens)
        missed = [0] * len(regimens)
        refills: list[Refill] = []
        while True:
            live = [i for i in range(len(regimens)) if not stopped[i]]
            if not live:
                break
            due = min(runout[i] for i in live)
            r = rng.random()
            lateness = (
                -rng.randint(1, 3)
                if r < 0.15
                else rng.randint(0, 2)
                if r < 0.7
                else rng.randint(3, 10)
                if r < 0.95
                else rng.randint(11, MAX_LATE)
            )
            day = max(first, due + dt.timedelta(days=lateness))
            if seeker:
                deal = self.calendar.next_member_day(day, DEAL_WAIT)
                day = deal or day
            elif weekender and day.weekday() in (3, 4):
                day += dt.timedelta(days=5 - day.weekday())
            if day > last:
                break
            buying = [i for i in live if (runout[i] - day).days <= EARLY_TOP_UP]
            if rng.random() < 0.07:  # this cycle bought at the hospital, in time
                for i in buying:
                    supply = regimens[i][1] * (regimens[i][0].days_supply or 1)
                    runout[i] += dt.timedelta(days=supply)
                    missed[i] += 1
                continue
            visit = self._visit(visits, day, "refill")
            for i in buying:
                product, qty = regimens[i]
                supply = qty * (product.days_supply or 1)
                refills.append(
                    Refill(spec.index, i, product.sku, qty, supply, runout[i], day, missed[i])
                )
                visit.lines[product.sku] = visit.lines.get(product.sku, 0) + qty
                runout[i] = max(runout[i], day) + dt.timedelta(days=supply)
                missed[i] = 0
                if rng.random() < 0.01:
                    stopped[i] = True  # switched or stopped by the doctor
            if rng.random() < 0.22:
                self._occasional(rng, spec, age, day, "refill", visits)
        return refills

    def _distinct(self, rng: random.Random, names: list[tuple[str, float]], k: int) -> list[str]:
        pool = [(n, w) for n, w in names if n in self.by_name]
        chosen: list[str] = []
        while pool and len(chosen) < k:
            name = rng.choices([n for n, _w in pool], weights=[w for _n, w in pool])[0]
            chosen.append(name)
            pool = [(n, w) for n, w in pool if n != name]
        return chosen

    def _regimen(self, rng: random.Random, name: str, cycle: int) -> tuple[ProductInfo, int]:
        product = rng.choice(self.by_name[name])
        days = product.days_supply or cycle
        return product, max(1, min(12, round(cycle / days)))

    # -- the whole chain -------------------------------------------------------------------

    def sale_for(
        self, rng: random.Random, spec: MemberSpec, visit: _Visit, traits: tuple[str, bool, bool]
    ) -> tuple[int, str, str, str]:
        """(store, staff, pay, insurance) for a visit."""
        preferred, insurance_user, pool = traits
        home = rng.random() < (0.95 if visit.refill_only else 0.87)
        store = spec.store if home or visit.kind == "enrol" else self.store_pick.pick(rng)
        clerks, pharmacists = self.sellers[store]
        rx = any(self.by_sku[s].item_class == "rx" for s in visit.lines)
        staff = rng.choice(pharmacists if (rx or rng.random() < 0.3) and pharmacists else clerks)
        pay = preferred if rng.random() < 0.85 else rng.choice(["cash", "wechat", "alipay"])
        listed = any(self.by_sku[s].insurance_listed for s in visit.lines)
        insurance = ""
        if listed and insurance_user and rng.random() < 0.9:
            insurance = "pool" if pool else "personal"
        return store, staff, pay, insurance

    @staticmethod
    def traits(rng: random.Random, age: int, chronic: bool) -> tuple[str, bool, bool]:
        if age < 40:
            kinds, weights = ["wechat", "alipay", "bank_card", "cash"], [55, 35, 5, 5]
        elif age < 65:
            kinds, weights = ["wechat", "alipay", "cash", "bank_card"], [50, 20, 18, 12]
        else:
            kinds, weights = ["cash", "wechat", "bank_card", "alipay"], [40, 35, 15, 10]
        preferred = rng.choices(kinds, weights=weights)[0]
        insurance_user = rng.random() < (0.75 if chronic else 0.45)
        pool = chronic and rng.random() < 0.3  # registered for 门诊慢特病
        return preferred, insurance_user, pool


def plan_sales(
    specs: Sequence[MemberSpec],
    products: Sequence[ProductInfo],
    *,
    stores: Sequence[StoreSpec],
    seed: int,
    today: dt.date,
    months: int = 12,
    member_day: Callable[[dt.date], bool] = lambda _day: False,
    birthday_deals: bool = False,
    return_rate: float = RETURN_RATE,
    expiry_policy: str = "none",
) -> SalesPlan:
    """The chain's sales over the ``months`` ending on ``today`` (inclusive). Pure.

    ``member_day`` tells the chain's member days (busier; deal-seeking patients wait for
    them), ``birthday_deals`` whether a birthday discount brings members in on the day, and
    ``expiry_policy`` when the expiry job runs: on 1 January for the year-end policies, on the
    first of each month for rolling expiry (the real job runs daily; the demo's presets do not
    use rolling expiry)."""
    end = today
    start = window_start(today, months)
    calendar = SalesCalendar(start, end, member_day)
    planner = _Planner(
        products,
        stores,
        calendar,
        seed=seed,
        birthday_deals=birthday_deals,
        return_rate=return_rate,
    )
    drafts: list[tuple[dt.datetime, int, PlannedSale, float]] = []
    refills: list[Refill] = []
    for spec in specs:
        visits, member_refills = planner.member(spec)
        if not visits:
            continue
        refills.extend(member_refills)
        rng = random.Random(f"carecard-demo-till-{seed}-{spec.index}")
        age = (end - dt.date.fromisoformat(spec.data["birthday"])).days // 365
        traits = planner.traits(rng, age, bool(member_refills))
        for visit in visits:
            if not visit.lines:
                continue
            assert visit.at is not None
            store, staff, pay, insurance = planner.sale_for(rng, spec, visit, traits)
            sale = PlannedSale(
                seq=0,
                member=spec.index,
                store=store,
                staff=staff,
                at=visit.at,
                lines=tuple(sorted(visit.lines.items())),
                pay=pay,
                insurance=insurance,
                kind=visit.kind,
            )
            drafts.append((visit.at, spec.index, sale, rng.random()))
    drafts.sort(key=lambda d: (d[0], d[1]))
    sales = [_with_seq(sale, i) for i, (_at, _m, sale, _r) in enumerate(drafts)]
    returns = _plan_returns(sales, [d[3] for d in drafts], planner, seed=seed, end=end)
    expiries = []
    if expiry_policy == "year_end" or expiry_policy == "next_year_end":
        expiries = [
            PlannedExpiry(dt.date(year, 1, 1))
            for year in range(start.year + 1, end.year + 1)
            if start < dt.date(year, 1, 1) <= end
        ]
    elif expiry_policy == "rolling_months":
        expiries = [PlannedExpiry(d) for d in calendar.days[1:] if d.day == 1]
    return SalesPlan(start, end, sales, returns, expiries, refills)


def _with_seq(sale: PlannedSale, seq: int) -> PlannedSale:
    return PlannedSale(
        seq=seq,
        member=sale.member,
        store=sale.store,
        staff=sale.staff,
        at=sale.at,
        lines=sale.lines,
        pay=sale.pay,
        insurance=sale.insurance,
        kind=sale.kind,
    )


def _plan_returns(
    sales: list[PlannedSale],
    rolls: list[float],
    planner: _Planner,
    *,
    seed: int,
    end: dt.date,
) -> list[PlannedReturn]:
    rng = random.Random(f"carecard-demo-returns-{seed}")
    out: list[PlannedReturn] = []
    for sale, roll in zip(sales, rolls, strict=True):
        weights = [RETURN_WEIGHT.get(planner.by_sku[s].item_class, 1.0) for s, _q in sale.lines]
        if roll >= planner.return_rate * max(weights):
            continue
        at = sale.at + dt.timedelta(days=rng.randint(1, 6), hours=rng.randint(-3, 3))
        at = at.replace(hour=min(21, max(8, at.hour)))
        if at.date() > end:
            continue
        # The line most likely to come back; sometimes the whole receipt.
        if len(sale.lines) > 1 and rng.random() < 0.3:
            lines = tuple((i + 1, q) for i, (_s, q) in enumerate(sale.lines))
        else:
            i = max(range(len(sale.lines)), key=lambda k: (weights[k], -k))
            qty = sale.lines[i][1]
            lines = ((i + 1, qty if qty == 1 or rng.random() < 0.5 else rng.randint(1, qty - 1)),)
        out.append(PlannedReturn(len(out), sale.seq, sale.member, at, lines, sale.staff))
    return out


def window_start(today: dt.date, months: int = 12) -> dt.date:
    """The first day of the ``months`` of sales that end on ``today``."""
    return _months_before(today, months) + dt.timedelta(days=1)


def _months_before(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Writing the plan
# ---------------------------------------------------------------------------------------------


def tenders_for(priced: PricedBasket, sale: PlannedSale) -> list[counter.TenderIn]:
    """How the member pays the priced basket: insurance for the listed lines (when they use
    it), the rest by their usual means. Tenders add up to the net exactly."""
    listed = ZERO
    if sale.insurance:
        listed = sum((pl.net for pl in priced.lines if pl.item.is_insurance_listed), ZERO)
    out = []
    if listed > 0:
        pool = ZERO
        if sale.insurance == "pool":
            pool = (listed * POOL_SHARE).quantize(CENT, rounding=ROUND_HALF_UP)
            out.append(counter.TenderIn(kind="insurance_pool", amount=pool))
        if listed > pool:
            out.append(counter.TenderIn(kind="insurance_personal", amount=listed - pool))
    if priced.net > listed:
        out.append(counter.TenderIn(kind=sale.pay, amount=priced.net - listed))
    return out


def receipt_no(store: Store, sale: PlannedSale) -> str:
    """Deterministic receipt numbers (the counter's are random), unique per store."""
    t = timezone.localtime(sale.at)
    stamp = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"
    return f"{store.code}-{stamp}-D{sale.seq:05X}"


class ServiceSalesWriter:
    """Every sale through ``sale_quote`` and ``sale_commit``, as a POS would send it."""

    def sale(self, planned: PlannedSale, *, member_id: int, store: Store, staff: Staff) -> int:
        lines = [counter.LineIn(sku=sku, quantity=qty) for sku, qty in planned.lines]
        quote = counter.sale_quote(
            store_id=store.pk, member_id=member_id, lines=lines, at=planned.at
        )
        tenders = tenders_for(quote.basket, planned)
        number = receipt_no(store, planned)
        body = {
            "receipt_no": number,
            "member_id": member_id,
            "lines": [[sku, qty] for sku, qty in planned.lines],
            "tenders": [[t.kind, str(t.amount)] for t in tenders],
            "at": planned.at.isoformat(),
        }
        result = counter.sale_commit(
            scope=SCOPE,
            idempotency_key=f"sale-{planned.seq}",
            body=body,
            store_id=store.pk,
            member_id=member_id,
            lines=lines,
            tenders=tenders,
            at=planned.at,
            staff=staff,
            receipt_no=number,
        )
        return result.sale.pk

    def expire(self, day: dt.date, at: dt.datetime) -> int:
        return points_expire_due(today=day, at=at)

    def flush(self) -> None:
        """Nothing is buffered."""

    def refresh(self, member_ids: Iterable[int] | None) -> None:
        """Nothing is cached."""


class _Rows:
    """Database-ready rows for one table, inserted with executemany."""

    # Values of these field types reach the database as they are; dates, datetimes and JSON go
    # through the backend's adapter, as Field.get_db_prep_save does (without its per-value
    # checks: these values are already aware datetimes and exact Decimals).
    PLAIN = (
        models.CharField,
        models.BooleanField,
        models.IntegerField,
        models.ForeignKey,
        models.DecimalField,
    )

    def __init__(self, model: type[Model], names: list[str]) -> None:
        self.model = model
        self.names = names
        ops = connection.ops
        self.prep: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(names):
            f = model._meta.get_field(name)
            if isinstance(f, self.PLAIN):
                continue
            if isinstance(f, models.DateTimeField):
                self.prep.append((i, _adapt_datetime))
            elif isinstance(f, models.DateField):
                self.prep.append((i, ops.adapt_datefield_value))
            elif isinstance(f, models.JSONField):
                self.prep.append((i, functools.partial(ops.adapt_json_value, encoder=f.encoder)))
            else:  # pragma: no cover — no other field types in these tables
                self.prep.append((i, functools.partial(f.get_db_prep_save, connection=connection)))
        self.rows: list[Any] = []

    def add(self, *values: Any) -> None:
        row = list(values)
        for i, prep in self.prep:
            if row[i] is not None:
                row[i] = prep(row[i])
        self.rows.append(row)

    def insert(self) -> None:
        _insert(self.model, self.names, self.rows)
        self.rows = []

    def upsert(self) -> None:
        """INSERT, or UPDATE the row with the same primary key (the first field)."""
        if not self.rows:
            return
        qn = connection.ops.quote_name
        columns = [qn(self.model._meta.get_field(n).column) for n in self.names]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
        sql = (
            f"INSERT INTO {qn(self.model._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
        )
        with connection.cursor() as cursor:
            cursor.executemany(sql, self.rows)
        self.rows = []


@functools.lru_cache(maxsize=4096)
def _adapt_datetime(value: dt.datetime) -> Any:
    """Rows repeat the same moment (sale, entry, lot): adapt each datetime once."""
    return connection.ops.adapt_datetimefield_value(value)


def _insert(model: type[Model], fields: list[str], rows: list[Any]) -> None:
    if not rows:
        return
    qn = connection.ops.quote_name
    columns = ", ".join(qn(model._meta.get_field(name).column) for name in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


@dataclass
class _MemberState:
    """What the counter reads and writes about a member, kept between flushes."""

    id: int
    status: str
    birthday: dt.date | None
    birthday_is_lunar: bool
    lunar_birthday: str
    pricing: PricingMember | None = None
    account: PointsAccount | None = None
    stats: MemberStats | None = None
    tier: MemberTier | None = None
    lots: list[list[Any]] = field(default_factory=list)  # [id, expires_on, remaining], open
    earns: list[tuple[dt.datetime, int]] = field(default_factory=list)
    dirty: bool = False
    tier_dirty: bool = False
    activated: bool = False


class BulkSalesWriter:
    """Writes sales with the rows and values ``sale_commit`` would write, in batches.

    Pricing and points come from the engines ``sale_commit`` uses (``price_basket``,
    ``earn_points``) with the same cached rules; the ledger, lots, aggregates, tier and
    activation are mirrored from ``points_earn``, ``_stats_add``, ``tier_evaluate`` and the
    purchase entry rule. Ids are allocated here (``sale:<id>`` references need them) and the
    PostgreSQL sequences are moved past them at every flush, so a service call in between gets
    the next id. Idempotency records are the POS's retry store and are not written: a replayed
    history has no retries. Members' accounts, aggregates and tiers are written at each flush;
    ``refresh`` re-reads the members a service call changed.
    """

    def __init__(self) -> None:
        self.settings = config.settings_get()
        self.policy = config.pricing_policy(self.settings)
        self.earning = config.earning_rule()
        self.program = config.program()
        self.tiers: list[Tier] = config.tiers()
        self.points_window = any(
            t.basis == TierBasis.POINTS and t.window_months for t in self.tiers
        )
        membership = policy_get()
        self.entry_min = (
            membership.entry_min_purchase if membership.entry_rule == EntryRule.PURCHASE else None
        )
        self.service = ServiceSalesWriter()
        self.tz = timezone.get_current_timezone()
        self.now = timezone.now()
        self.purchase_rules = PurchaseRule.objects.filter(active=True).exists()
        self.ladder = LadderStep.objects.exists()
        self.spend_benefits = config.spend_benefits()
        self.benefits_due: list[tuple[Any, int, dt.datetime, Staff, int]] = []
        self.items: dict[str, Item] = {}
        self.product_ids: dict[str, int] = {}
        for p in Product.objects.order_by("pk"):
            self.product_ids[p.sku] = p.pk
            self.items[p.sku] = Item(
                sku=p.sku,
                name=p.name,
                item_class=p.item_class,
                category_ids=config.category_path(p.category_id),
                shelf_price=p.shelf_price,
                member_price=p.member_price,
                is_special_price=p.is_special_price,
                is_limited=p.is_limited,
                is_promotional=p.is_promotional,
                is_insurance_listed=p.is_insurance_listed,
                contains_ephedrine=p.contains_ephedrine,
            )
        self.rules: dict[int | None, Any] = {}
        self.members: dict[int, _MemberState] = {
            pk: _MemberState(pk, status, birthday, is_lunar, lunar)
            for pk, status, birthday, is_lunar, lunar in Member.objects.values_list(
                "pk", "status", "birthday", "birthday_is_lunar", "lunar_birthday"
            )
        }
        self.dirty: dict[int, _MemberState] = {}
        self.sales = _Rows(
            Sale,
            [
                "id",
                "receipt_no",
                "kind",
                "member",
                "store",
                "terminal",
                "staff",
                "original_sale",
                "at",
                "business_date",
                "recorded_at",
                "offline",
                "original_total",
                "discount_total",
                "net_total",
                "points_earned",
                "points_spent",
                "points_balance",
                "recovered_amount",
                "explanation",
            ],
        )
        self.lines = _Rows(
            SaleLine,
            [
                "id",
                "sale",
                "member",
                "line_no",
                "product",
                "sku",
                "name",
                "quantity",
                "unit_price",
                "original",
                "discount",
                "net",
                "points",
                "returned_quantity",
                "returns_line",
                "explanation",
            ],
        )
        self.discounts = _Rows(
            SaleDiscount,
            [
                "line",
                "member",
                "kind",
                "rule_ref",
                "coupon_code",
                "amount",
                "reason",
                "funded_by",
                "points_funded",
            ],
        )
        self.tenders = _Rows(
            SaleTender, ["sale", "member", "kind", "amount", "points", "reference"]
        )
        self.entries = _Rows(
            PointsEntry,
            [
                "id",
                "member",
                "kind",
                "points",
                "balance_after",
                "at",
                "store",
                "actor",
                "reference",
                "reason",
                "explanation",
                "corrects",
            ],
        )
        self.lots = _Rows(
            PointsLot,
            [
                "id",
                "member",
                "entry",
                "earned_at",
                "available_at",
                "expires_on",
                "original",
                "remaining",
            ],
        )
        self.tier_changes = _Rows(TierChange, ["member", "from_tier", "to_tier", "at", "reason"])
        self.lot_uses = _Rows(PointsLotUse, ["entry", "lot", "member", "points"])
        self.lot_updates: list[tuple[int, int]] = []
        self.accounts = _Rows(
            PointsAccount,
            [
                "member",
                "balance",
                "debt",
                "lifetime_earned",
                "lifetime_spent",
                "lifetime_expired",
                "updated_at",
            ],
        )
        self.stats = _Rows(
            MemberStats,
            [
                "member",
                "first_purchase_at",
                "last_purchase_at",
                "last_store",
                "visits",
                "spend",
                "visits_12m",
                "spend_12m",
                "months",
            ],
        )
        self.tier_states = _Rows(
            MemberTier, ["member", "tier", "since", "paid_until", "grace_until"]
        )
        self.refresh(None)

    # -- state -----------------------------------------------------------------------------

    def refresh(self, member_ids: Iterable[int] | None) -> None:
        """Re-read accounts, lots, aggregates and tiers (all members when ``None``) and the
        next free ids, after a service call wrote them."""
        ids = None if member_ids is None else sorted(set(member_ids))
        if ids == []:
            return

        def scoped(qs: Any) -> Any:
            return qs if ids is None else qs.filter(member_id__in=ids)

        states = self.members.values() if ids is None else [self.members[i] for i in ids]
        for st in states:
            st.account = st.stats = st.tier = None
            st.lots = []
            st.earns = []
        if ids is not None:  # a delegated sale may have activated the member
            for pk, status in Member.objects.filter(pk__in=ids).values_list("pk", "status"):
                self.members[pk].status = status
                self.members[pk].pricing = None
        for account in scoped(PointsAccount.objects.all()):
            self.members[account.pk].account = account
        for stats in scoped(MemberStats.objects.all()):
            self.members[stats.pk].stats = stats
        tiers = {t.pk: t for t in self.tiers}
        for state in scoped(MemberTier.objects.all()):
            state.tier = tiers[state.tier_id]
            self.members[state.pk].tier = state
        for lot_id, member_id, expires_on, remaining in scoped(
            PointsLot.objects.filter(remaining__gt=0).order_by("pk")
        ).values_list("pk", "member_id", "expires_on", "remaining"):
            self.members[member_id].lots.append([lot_id, expires_on, remaining])
        if self.points_window:
            for member_id, at, points in scoped(
                PointsEntry.objects.filter(kind__in=(EntryKind.EARN, EntryKind.BONUS)).order_by(
                    "at", "pk"
                )
            ).values_list("member_id", "at", "points"):
                self.members[member_id].earns.append((at, points))
        self.next_sale = (Sale.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
        self.next_line = (SaleLine.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
        self.next_entry = (PointsEntry.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
        self.next_lot = (PointsLot.objects.aggregate(m=Max("pk"))["m"] or 0) + 1

    def _needs_service(self, st: _MemberState) -> bool:
        """Whether the sale has effects this writer does not mirror — coupons issued for the
        purchase (满即送 rules; the demo chain has none) or by the rebate ladder — and so goes
        through ``sale_commit`` itself."""
        return (self.purchase_rules or self.ladder) and st.status == MemberStatus.ACTIVE

    def _pricing(self, st: _MemberState) -> PricingMember:
        tier = st.tier.tier.code if st.tier is not None else None
        if (
            st.pricing is None
            or st.pricing.tier != tier
            or st.pricing.is_member != (st.status == MemberStatus.ACTIVE)
        ):
            birthday = st.pricing.birthday if st.pricing is not None else None
            if st.pricing is None:
                birthday = birthday_info(
                    st.birthday, is_lunar=st.birthday_is_lunar, lunar_birthday=st.lunar_birthday
                )
            st.pricing = PricingMember(
                is_member=st.status == MemberStatus.ACTIVE, tier=tier, birthday=birthday
            )
        return st.pricing

    def _region_rules(self, region_id: int | None) -> Any:
        rules = self.rules.get(region_id)
        if rules is None:
            rules = self.rules[region_id] = config.pricing_rules(region_id)
        return rules

    # -- one sale: sale_commit's writes ----------------------------------------------------

    def sale(self, planned: PlannedSale, *, member_id: int, store: Store, staff: Staff) -> int:
        st = self.members[member_id]
        at = planned.at
        local = at.astimezone(self.tz)
        day = local.date()
        member = self._pricing(st)
        priced = price_basket(
            [Line(self.items[sku], qty) for sku, qty in planned.lines],
            member,
            self._region_rules(store.region_id),
            [],
            self.policy,
            day,
        )
        if self._needs_service(st):
            self.flush()
            sale_id = self.service.sale(planned, member_id=member_id, store=store, staff=staff)
            self.refresh([member_id])
            return sale_id
        tenders = tenders_for(priced, planned)
        if sum((t.amount for t in tenders), ZERO) != priced.net:  # pragma: no cover
            raise AssertionError("tenders must cover the net")
        earning = earn_points(
            priced, [Tender(t.kind, t.amount) for t in tenders], self.earning, member, day
        )
        sale_id = self.next_sale
        self.next_sale += 1
        for pl in priced.lines:
            line_id = self.next_line
            self.next_line += 1
            self.lines.add(
                line_id,
                sale_id,
                member_id,
                pl.index + 1,
                self.product_ids[pl.item.sku],
                pl.item.sku,
                pl.item.name,
                pl.quantity,
                pl.item.shelf_price,
                pl.original,
                pl.discount_total,
                pl.net,
                earning.lines[pl.index].points,
                0,
                None,
                {
                    "text": earning.lines[pl.index].text,
                    # allocate_tenders(priced, tenders, rule), as earn_points computed it
                    "tenders": {
                        k: str(v) for k, v in earning.lines[pl.index].tender_shares.items() if v > 0
                    },
                },
            )
            for d in pl.discounts:
                if d.amount > 0:
                    self.discounts.add(
                        line_id,
                        member_id,
                        d.kind,
                        str(d.rule_id or ""),
                        d.coupon_code or "",
                        d.amount,
                        d.reason,
                        d.funded_by,
                        d.points_funded,
                    )
        for t in tenders:
            self.tenders.add(sale_id, member_id, t.kind, t.amount, t.points, t.reference)
        # lock_account: the account exists from the member's first sale on.
        account = st.account
        if account is None:
            account = st.account = PointsAccount(member_id=member_id)
        earned = 0
        if earning.total > 0:
            earned = earning.total
            self._earn(st, account, earned, at, day, store.pk, sale_id, earning)
        if (
            st.status == MemberStatus.PENDING
            and self.entry_min is not None
            and priced.net >= self.entry_min
        ):
            st.status = MemberStatus.ACTIVE
            st.activated = True
        stats = st.stats
        if stats is None:
            stats = st.stats = MemberStats(member_id=member_id)
        counter_stats_add(stats, at=at, store_id=store.pk, amount=priced.net, visit=1, tz=self.tz)
        if self.spend_benefits and st.status == MemberStatus.ACTIVE:
            # _spend_benefits: the yearly-spend thresholds this sale crossed; the coupons are
            # issued by coupon_issue itself when the rows are written.
            year = local.year
            after = sum(
                (Decimal(v) for m, (_n, v) in stats.months.items() if m[:4] == str(year)), ZERO
            )
            for benefit in self.spend_benefits:
                if after - priced.net < benefit.threshold <= after:
                    self.benefits_due.append((benefit, member_id, at, staff, year))
        self._tier_evaluate(st, counter.measures(stats, account.lifetime_earned), at)
        self.dirty[member_id] = st
        self.sales.add(
            sale_id,
            receipt_no(store, planned),
            SaleKind.SALE,
            member_id,
            store.pk,
            None,
            staff.pk,
            None,
            at,
            day,
            self.now,  # recorded_at: when the batch was written
            False,
            priced.original,
            priced.discount_total,
            priced.net,
            earned,
            0,
            account.balance,
            ZERO,
            {"text": earning.text},
        )
        return sale_id

    def _earn(
        self,
        st: _MemberState,
        account: PointsAccount,
        points: int,
        at: dt.datetime,
        day: dt.date,
        store_id: int,
        sale_id: int,
        earning: Any,
    ) -> None:
        """points_earn: an entry, a lot (less any debt it repays), the account."""
        account.balance += points
        entry_id = self.next_entry
        self.next_entry += 1
        self.entries.add(
            entry_id,
            st.id,
            EntryKind.EARN,
            points,
            account.balance,
            at,
            store_id,
            None,
            f"sale:{sale_id}",
            earning.rule_label,
            {"text": earning.text, "lines": [ln.text for ln in earning.lines]},
            None,
        )
        repay = min(account.debt, points)
        account.debt -= repay
        lot_id = self.next_lot
        self.next_lot += 1
        expires_on = lot_expires_on(
            self.program.expiry_policy,
            day,
            months=self.program.expiry_months,
        )
        self.lots.add(
            lot_id,
            st.id,
            entry_id,
            at,
            at + dt.timedelta(days=self.program.pending_days),
            expires_on,
            points,
            points - repay,
        )
        if points - repay > 0:
            st.lots.append([lot_id, expires_on, points - repay])
        account.lifetime_earned += points
        if self.points_window:
            st.earns.append((at, points))

    def _tier_evaluate(self, st: _MemberState, measures: Measures, at: dt.datetime) -> None:
        """tier_evaluate: up at once, never down; the entry tier at the first sale."""
        tiers = self.tiers
        if not tiers:
            return
        if self.points_window:
            since = at - dt.timedelta(days=365)
            measures = Measures(
                points=measures.points,
                points_12m=sum(p for a, p in st.earns if a >= since),
                spend=measures.spend,
                spend_12m=measures.spend_12m,
                visits=measures.visits,
                visits_12m=measures.visits_12m,
            )
        earned = earned_tier(tiers, measures)
        target = earned or min(tiers, key=lambda t: t.rank)
        state = st.tier
        if state is None:
            self.tier_changes.add(st.id, None, target.pk, at, _("入会"))
            st.tier = MemberTier(member_id=st.id, tier=target, since=at)
            st.tier_dirty = True
        elif target.rank > state.tier.rank:
            self.tier_changes.add(st.id, state.tier.pk, target.pk, at, _("达到升级门槛"))
            state.tier, state.since, state.grace_until = target, at, None
            st.tier_dirty = True
        elif state.grace_until is not None and earned == state.tier:
            state.grace_until = None
            st.tier_dirty = True

    # -- the expiry job: points_expire_due's writes -----------------------------------------

    def expire(self, day: dt.date, at: dt.datetime) -> int:
        """Expire every lot whose last day is before ``day``: one entry per member, in member
        order, taking the lots soonest-expiring first; stamped ``at``."""
        self.flush()
        expired = 0
        for member_id in sorted(self.members):
            st = self.members[member_id]
            lots = sorted(
                (lot for lot in st.lots if lot[1] is not None and lot[1] < day and lot[2] > 0),
                key=lambda lot: (lot[1], lot[0]),
            )
            total = sum(lot[2] for lot in lots)
            if not total:
                continue
            account = st.account
            assert account is not None
            account.balance -= total
            entry_id = self.next_entry
            self.next_entry += 1
            self.entries.add(
                entry_id,
                member_id,
                EntryKind.EXPIRE,
                -total,
                account.balance,
                at,
                None,
                None,
                "",
                _("积分到期"),
                {"lots": [lot[0] for lot in lots], "before": day.isoformat()},
                None,
            )
            for lot in lots:
                self.lot_uses.add(entry_id, lot[0], member_id, lot[2])
                self.lot_updates.append((0, lot[0]))
                lot[2] = 0
            st.lots = [lot for lot in st.lots if lot[2] > 0]
            account.lifetime_expired += total
            expired += total
            self.dirty[member_id] = st
        self.flush()
        return expired

    # -- writing out -----------------------------------------------------------------------

    def flush(self) -> None:
        """Insert the buffered rows and write the changed members, in one transaction."""
        if not self.sales.rows and not self.dirty and not self.entries.rows:
            return
        now = timezone.now()
        self.now = now
        activated = []
        for st in self.dirty.values():
            a = st.account
            if a is not None:
                a.updated_at = now
                self.accounts.add(
                    st.id,
                    a.balance,
                    a.debt,
                    a.lifetime_earned,
                    a.lifetime_spent,
                    a.lifetime_expired,
                    now,
                )
            s = st.stats
            if s is not None:
                self.stats.add(
                    st.id,
                    s.first_purchase_at,
                    s.last_purchase_at,
                    s.last_store_id,
                    s.visits,
                    s.spend,
                    s.visits_12m,
                    s.spend_12m,
                    s.months,
                )
            if st.tier_dirty and st.tier is not None:
                t = st.tier
                self.tier_states.add(st.id, t.tier.pk, t.since, t.paid_until, t.grace_until)
                st.tier_dirty = False
            if st.activated:
                activated.append((MemberStatus.ACTIVE, st.id, MemberStatus.PENDING))
                st.activated = False
        self.dirty = {}
        with transaction.atomic():
            for rows in (self.sales, self.lines, self.discounts, self.tenders, self.entries):
                rows.insert()
            self.lots.insert()
            self.tier_changes.insert()
            self.accounts.upsert()
            self.stats.upsert()
            self.tier_states.upsert()
            if activated:
                # member_activate: pending → active, nothing else.
                table = connection.ops.quote_name(Member._meta.db_table)
                with connection.cursor() as cursor:
                    cursor.executemany(
                        f"UPDATE {table} SET status = %s WHERE id = %s AND status = %s",  # noqa: S608
                        activated,
                    )
            for benefit, member_id, at, staff, year in self.benefits_due:
                coupon_services.coupon_issue(
                    template=benefit.coupon_template,
                    member=Member.objects.get(pk=member_id),
                    at=at,
                    source="campaign",
                    reference=f"spend_benefit:{benefit.pk}:{year}",
                    actor=staff,
                )
            self.benefits_due = []
            if self.lot_updates:
                table = connection.ops.quote_name(PointsLot._meta.db_table)
                with connection.cursor() as cursor:
                    cursor.executemany(
                        f"UPDATE {table} SET remaining = %s WHERE id = %s",  # noqa: S608
                        self.lot_updates,
                    )
                self.lot_updates = []
            self.lot_uses.insert()
            if connection.vendor == "postgresql":
                # Explicit ids bypass the sequences: move them past, for the services.
                with connection.cursor() as cursor:
                    for sql in connection.ops.sequence_reset_sql(
                        no_style(), [Sale, SaleLine, PointsEntry, PointsLot]
                    ):
                        cursor.execute(sql)


def counter_stats_add(
    stats: MemberStats,
    *,
    at: dt.datetime,
    store_id: int,
    amount: Decimal,
    visit: int,
    tz: dt.tzinfo | None = None,
) -> None:
    """``checkout.services._stats_add`` on a row held in memory (the same arithmetic;
    ``tz`` is the current time zone, passed in to save looking it up)."""
    tz = tz or timezone.get_current_timezone()
    local = at.astimezone(tz)
    month = f"{local.year:04d}-{local.month:02d}"
    visits, spend = stats.months.get(month, [0, "0.00"])
    stats.months[month] = [visits + visit, str(Decimal(spend) + amount)]
    if len(stats.months) > 13 or next(reversed(stats.months)) != month:
        keep = sorted(stats.months)[-13:]
        stats.months = {k: stats.months[k] for k in keep}
    if visit:
        stats.visits += visit
        if stats.first_purchase_at is None or at < stats.first_purchase_at:
            stats.first_purchase_at = at
        if stats.last_purchase_at is None or at >= stats.last_purchase_at:
            stats.last_purchase_at = at
            stats.last_store_id = store_id
    stats.spend += amount
    now = max(at, stats.last_purchase_at or at).astimezone(tz)
    window = _window(now.year, now.month)
    stats.visits_12m = sum(v for k, (v, _s) in stats.months.items() if k in window)
    stats.spend_12m = sum((Decimal(s) for k, (_v, s) in stats.months.items() if k in window), ZERO)


@functools.lru_cache(maxsize=256)
def _window(year: int, month: int) -> frozenset[str]:
    """The twelve months ("YYYY-MM") ending with this one."""
    first = (year * 12 + month - 1) - 11
    return frozenset(f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, first + 12))


# ---------------------------------------------------------------------------------------------
# The timeline
# ---------------------------------------------------------------------------------------------


def _run_return(event: PlannedReturn, ctx: _Context) -> list[int]:
    result = counter.sale_return(
        scope=SCOPE,
        idempotency_key=f"return-{event.seq}",
        body={
            "sale": event.sale,
            "lines": [list(line) for line in event.lines],
            "at": event.at.isoformat(),
        },
        sale_id=ctx.sale_ids[event.sale],
        lines=[counter.ReturnLineIn(line_no=n, quantity=q) for n, q in event.lines],
        at=event.at,
        staff=ctx.staff[event.staff],
    )
    ctx.counts["returns"] += 1
    return [result.sale.member_id] if result.sale.member_id else []


@dataclass
class _Context:
    sale_ids: dict[int, int]
    staff: dict[str, Staff]
    counts: dict[str, int]


# Service events: run by the real services in both writers; the handler returns the members it
# changed (None: any member), which the bulk writer re-reads.
_SERVICE_EVENTS: dict[type, Callable[[Any, _Context], list[int] | None]] = {
    PlannedReturn: _run_return,
}


def write_sales(
    plan: SalesPlan,
    *,
    writer: str,
    members: dict[int, int],
    stores: Sequence[Store],
    staff: dict[str, Staff],
    progress: Callable[[str], None] | None = None,
    batch: int = 5000,
) -> dict[str, int]:
    """Replay the plan in time order; ``members`` maps spec index → member id."""
    if writer not in ("bulk", "service"):
        raise ValueError("writer must be 'bulk' or 'service'")
    say = progress or (lambda _text: None)
    out: BulkSalesWriter | ServiceSalesWriter = (
        BulkSalesWriter() if writer == "bulk" else ServiceSalesWriter()
    )
    ctx = _Context(sale_ids={}, staff=staff, counts=defaultdict(int))
    started = last_report = time.perf_counter()
    total = len(plan.sales)
    pending = 0
    touched: set[int] | None = set()  # members the services changed (None: any)
    for event in plan.events():
        if not isinstance(event, PlannedReturn) and touched != set():
            out.refresh(touched)
            touched = set()
        if isinstance(event, PlannedSale):
            ctx.sale_ids[event.seq] = out.sale(
                event,
                member_id=members[event.member],
                store=stores[event.store],
                staff=staff[event.staff],
            )
            pending += 1
            if pending >= batch:
                out.flush()
                pending = 0
            if time.perf_counter() - last_report > 3:
                last_report = time.perf_counter()
                say(f"  销售 {len(ctx.sale_ids)}/{total} ({last_report - started:.1f} s)")
            continue
        pending = 0
        if isinstance(event, PlannedExpiry):
            ctx.counts["points_expired"] += out.expire(event.day, event.at)
            continue
        out.flush()
        changed = _SERVICE_EVENTS[type(event)](event, ctx)
        touched = None if changed is None or touched is None else touched | set(changed)
    out.flush()
    ctx.counts["sales"] = len(ctx.sale_ids)
    return dict(ctx.counts)


# ---------------------------------------------------------------------------------------------
# Comparing two replays
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def sales_rows() -> dict[str, list[Any]]:
    """Every row the sales wrote, keyed by what stays the same between two replays of a plan
    (phones, receipt numbers, SKUs) instead of database ids; a return is known by its
    original's receipt number and its time (its own receipt number is random)."""
    phone = dict(Member.objects.values_list("pk", "phone"))
    store = dict(Store.objects.values_list("pk", "code"))
    staff = dict(Staff.objects.values_list("pk", "username"))
    sku = dict(Product.objects.values_list("pk", "sku"))
    tier = dict(Tier.objects.values_list("pk", "code"))
    sale_key: dict[int, str] = {}
    out: dict[str, list[Any]] = defaultdict(list)
    for s in Sale.objects.order_by("pk").values():
        if s["kind"] == SaleKind.SALE:
            sale_key[s["id"]] = s["receipt_no"]
        else:
            sale_key[s["id"]] = f"R:{sale_key[s['original_sale_id']]}@{s['at'].isoformat()}"
        out["sales"].append(
            [
                sale_key[s["id"]],
                s["kind"],
                phone.get(s["member_id"]),
                store[s["store_id"]],
                staff.get(s["staff_id"]),
                s["terminal_id"],
                sale_key.get(s["original_sale_id"]),
                s["at"],
                s["business_date"],
                s["offline"],
                s["original_total"],
                s["discount_total"],
                s["net_total"],
                s["points_earned"],
                s["points_spent"],
                s["points_balance"],
                s["recovered_amount"],
                s["explanation"],
            ]
        )
    line_key: dict[int, str] = {}
    for ln in SaleLine.objects.order_by("pk").values():
        line_key[ln["id"]] = f"{sale_key[ln['sale_id']]}#{ln['line_no']}"
        out["lines"].append(
            [
                line_key[ln["id"]],
                phone.get(ln["member_id"]),
                sku[ln["product_id"]],
                ln["sku"],
                ln["name"],
                ln["quantity"],
                ln["unit_price"],
                ln["original"],
                ln["discount"],
                ln["net"],
                ln["points"],
                ln["returned_quantity"],
                line_key.get(ln["returns_line_id"]),
                ln["explanation"],
            ]
        )
    for d in SaleDiscount.objects.values():
        out["discounts"].append(
            [
                line_key[d["line_id"]],
                phone.get(d["member_id"]),
                d["kind"],
                d["rule_ref"],
                d["coupon_code"],
                d["amount"],
                d["reason"],
                d["funded_by"],
                d["points_funded"],
            ]
        )
    for t in SaleTender.objects.values():
        out["tenders"].append(
            [
                sale_key[t["sale_id"]],
                phone.get(t["member_id"]),
                t["kind"],
                t["amount"],
                t["points"],
                t["reference"],
            ]
        )

    def ref(text: str) -> str:
        kind, _sep, pk = text.partition(":")
        if kind in ("sale", "return") and pk.isdigit():
            return f"{kind}:{sale_key[int(pk)]}"
        return text

    entry_key: dict[int, str] = {}
    entries = list(PointsEntry.objects.order_by("pk").values())
    seen: dict[int, int] = defaultdict(int)
    for e in entries:
        seen[e["member_id"]] += 1  # the member's n-th entry: the ledger's order
        entry_key[e["id"]] = f"{phone[e['member_id']]}/{seen[e['member_id']]}"
    lot_key = {
        pk: entry_key[entry] for pk, entry in PointsLot.objects.values_list("pk", "entry_id")
    }
    for e in entries:
        explanation = dict(e["explanation"] or {})
        if "lots" in explanation:
            explanation["lots"] = [lot_key[pk] for pk in explanation["lots"]]
        out["entries"].append(
            [
                entry_key[e["id"]],
                e["kind"],
                e["points"],
                e["balance_after"],
                e["at"],
                store.get(e["store_id"]),
                staff.get(e["actor_id"]),
                ref(e["reference"]),
                e["reason"],
                explanation,
                entry_key.get(e["corrects_id"]),
            ]
        )
    for lot in PointsLot.objects.values():
        out["lots"].append(
            [
                entry_key[lot["entry_id"]],
                lot["earned_at"],
                lot["available_at"],
                lot["expires_on"],
                lot["original"],
                lot["remaining"],
            ]
        )
    for use in PointsLotUse.objects.values():
        out["lot_uses"].append([entry_key[use["entry_id"]], lot_key[use["lot_id"]], use["points"]])
    for a in PointsAccount.objects.values():
        out["accounts"].append(
            [
                phone[a["member_id"]],
                a["balance"],
                a["debt"],
                a["lifetime_earned"],
                a["lifetime_spent"],
                a["lifetime_expired"],
            ]
        )
    for st in MemberStats.objects.values():
        out["stats"].append(
            [
                phone[st["member_id"]],
                st["first_purchase_at"],
                st["last_purchase_at"],
                store.get(st["last_store_id"]),
                st["visits"],
                st["spend"],
                st["visits_12m"],
                st["spend_12m"],
                st["months"],
            ]
        )
    for mt in MemberTier.objects.values():
        out["tiers"].append(
            [
                phone[mt["member_id"]],
                tier[mt["tier_id"]],
                mt["since"],
                mt["paid_until"],
                mt["grace_until"],
            ]
        )
    for tc in TierChange.objects.values():
        out["tier_changes"].append(
            [
                phone[tc["member_id"]],
                tier.get(tc["from_tier_id"]),
                tier[tc["to_tier_id"]],
                tc["at"],
                tc["reason"],
            ]
        )
    templates = dict(CouponTemplate.objects.values_list("pk", "name"))
    for c in Coupon.objects.values():
        out["coupons"].append(
            [
                phone.get(c["member_id"]),
                templates[c["template_id"]],
                c["status"],
                c["issued_at"],
                c["valid_from"],
                c["valid_until"],
                c["source"],
                ref(c["source_reference"]),
                c["campaign_code"],
                staff.get(c["issued_by_id"]),
                store.get(c["issued_store_id"]),
                c["redeemed_at"],
                ref(c["redeemed_reference"]),
                c["redeemed_amount"],
            ]
        )
    members = Member.objects.values_list("pk", "status")
    out["members"] = [[phone[pk], status] for pk, status in members]
    return {
        name: sorted(
            (json.loads(json.dumps(row, default=_plain, ensure_ascii=False)) for row in rows),
            key=lambda r: json.dumps(r, ensure_ascii=False),
        )
        for name, rows in out.items()
    }


def sales_fingerprint() -> str:
    """A hash of :func:`sales_rows`: equal for two replays of the same plan."""
    payload = json.dumps(sales_rows(), ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()

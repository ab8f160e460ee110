"""Twelve months of demo sales (I-4): a deterministic plan, written through the counter or in bulk.

:func:`plan_sales` is pure: from the member specs, the catalogue and the chain's member days it
draws who buys what, where, when and how they pay — a weekly rhythm (weekends busier), member-day
and flu-season (Dec–Feb) peaks, chronic patients refilling each medicine when their supply runs
out (a little early or late, waiting for a member day, now and then bought at the hospital),
occasional shoppers led by their interests and the season, mixed tenders with medical insurance
for listed items, and about 1 % of sales returned within a few days. It also draws what members
do at the counter besides buying (:func:`_plan_extras`): turning points into the rules' reward
vouchers (most in December before a year-end clearing) and handing a voucher over at a later
visit, and, for about 6.5 % of the members (older chronic patients most), keeping stored value:
topping up (with the bonus tiers; an unregistered card holds at most 1 000 CNY) and paying from
it. The plan says what a member would do; what happens depends on their points, vouchers and
balance at that moment, decided the same way by both writers (:func:`redemption_for`,
:func:`voucher_for`, :func:`topup_for`, :func:`wallet_room`).

:func:`write_sales` replays the plan (:meth:`SalesPlan.events`). Each sale goes either through
the services (``writer="service"``: ``reward_redeem``, ``wallet_topup``, ``sale_quote`` and
``sale_commit`` with the voucher's code and a stored-value tender) or through
:class:`BulkSalesWriter` (``"bulk"``), which prices with the same pure engines (``price_basket``,
``earn_points``) and the same cached counter configuration and inserts, in batches, exactly the
rows the services write: the sale, lines, discounts, tenders, points entry and lot, account,
aggregates, tier, activation under the purchase entry rule, the yearly-spend vouchers (issued by
``coupon_issue`` itself), the redemption (points entry, lot uses, voucher, redemption row), the
voucher's use, the top-up with its bonus and the stored-value payment. The year-end expiry is
``points_expire_due`` for the service writer and its mirror for the bulk writer
(``points_expire_due`` takes a transaction per member: ~15 s for the default demo). Returns go
through ``sale_return`` in both writers (giving back vouchers and stored value); the bulk writer
first writes out everything before them and afterwards re-reads the members they changed. Tests
replay one plan both ways and compare every row (:func:`sales_rows`).

Speed (the demo's first start has a minute): when a core is free a worker process prices the
planned baskets ahead of the bulk writer (:meth:`BulkSalesWriter.speculate`); a guess is taken
only when the member, region and tenders it assumed are the ones met, so it never changes a row.

Events other than sales run through the services: :class:`PlannedReturn` is handled by
``_SERVICE_EVENTS``; another kind is one more planned-event class with a handler there, which
returns the members it changed for the bulk writer to re-read, and one more clause in
:meth:`SalesPlan.events` to place it in time.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Case, Max, Model, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.catalog.models import Product
from carecard.chain.models import Staff, Store
from carecard.checkout import config
from carecard.checkout import services as counter
from carecard.checkout.engine import Item, Line, PricedBasket, PricingError, price_basket
from carecard.checkout.models import (
    MemberStats,
    Sale,
    SaleDiscount,
    SaleKind,
    SaleLine,
    SaleTender,
    TenderKind,
)
from carecard.coupons import rules as coupon_rules
from carecard.coupons import services as coupon_services
from carecard.coupons.models import (
    Coupon,
    CouponEvent,
    CouponKind,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    EventKind,
    PurchaseRule,
)
from carecard.demo import workers
from carecard.demo.people import SHANGHAI, MemberSpec, StoreSpec, Weighted
from carecard.loyalty.earning import EarningRule, Tender, allocate_tenders, earn_points
from carecard.loyalty.expiry import lot_expires_on
from carecard.loyalty.models import (
    EntryKind,
    LadderStep,
    MemberTier,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsLotUse,
    Reward,
    RewardKind,
    RewardRedemption,
    Tier,
    TierBasis,
    TierChange,
)
from carecard.loyalty.rewards import reward_redeem
from carecard.loyalty.rules import Member as PricingMember
from carecard.loyalty.rules import birthday_info
from carecard.loyalty.services import available_points, points_expire_due
from carecard.loyalty.tiers import Measures, earned_tier
from carecard.members.models import EntryRule, Member, MemberStatus
from carecard.members.services import policy_get
from carecard.wallet import rules as wallet_rules
from carecard.wallet.models import EntryKind as WalletEntryKind
from carecard.wallet.models import TopupRule, WalletAccount, WalletEntry
from carecard.wallet.selectors import balance_limit_for, wallet_holder, wallet_policy
from carecard.wallet.services import wallet_topup

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
RETURN_RATE = 0.011  # share of sales returned (weighted towards devices and health foods)
POOL_SHARE = Decimal("0.60")  # 门诊慢特病: the pooled fund pays this share of listed items
SCOPE = "demo"  # idempotency scope of the replayed counter calls
AHEAD_MIN = 40  # the pricing worker skips sales fewer than this ahead of the writer
# Pricing ahead (BulkSalesWriter.speculate): "worker" on a second core when there is one,
# "inline" all before the writes (tests: every guess is taken), "off".
SPECULATE = "worker"
_LIVE = frozenset({MemberStatus.ACTIVE, MemberStatus.PENDING})  # may top up (wallet._LIVE)
HOURS = range(8, 22)
HOUR_WEIGHTS = [2, 6, 9, 8, 5, 4, 5, 6, 7, 9, 10, 8, 5, 2]  # as enrolments: mornings, after work
WEEKDAY = (0.92, 0.9, 0.92, 0.94, 1.0, 1.24, 1.18)  # Monday … Sunday
MEMBER_DAY_BOOST = 1.8
FLU_MONTHS = frozenset({12, 1, 2})
EARLY_TOP_UP = 7  # a patient buys every regimen that has at most this many days left
MAX_LATE = 25
DEAL_WAIT = 3  # a deal-seeking patient waits at most this long for a member day
WALLET_SHARE = 0.065  # members who keep stored value (5–8 % in Chinese pharmacy chains)
REDEEM_SHARE = 0.55  # members who turn their points into vouchers when they can


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
    # What else the member does at the counter (:func:`_plan_extras`); what actually happens
    # depends on their points, vouchers and stored value then (:class:`CounterState`).
    redeem: int = 0  # how many rewards they would take, if their points allow
    voucher: bool = False  # they hand over a points voucher they hold, if one fits the basket
    topup: Decimal = ZERO  # their usual top-up, made when the balance will not pay the basket
    wallet: bool = False  # they pay the self-paid part from stored value, as far as it goes
    lead: int = 0  # seconds before ``at`` of the redemption (the top-up comes halfway)

    @property
    def redeem_at(self) -> dt.datetime:
        return self.at - dt.timedelta(seconds=self.lead)

    @property
    def topup_at(self) -> dt.datetime:
        return self.at - dt.timedelta(seconds=self.lead // 2)


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
    wallet_share: float = WALLET_SHARE,
    redeem_share: float = REDEEM_SHARE,
) -> SalesPlan:
    """The chain's sales over the ``months`` ending on ``today`` (inclusive). Pure.

    ``member_day`` tells the chain's member days (busier; deal-seeking patients wait for
    them), ``birthday_deals`` whether a birthday discount brings members in on the day, and
    ``expiry_policy`` when the expiry job runs: on 1 January for the year-end policies, on the
    first of each month for rolling expiry (the real job runs daily; the demo's presets do not
    use rolling expiry). ``wallet_share`` of the members keep stored value and
    ``redeem_share`` turn their points into vouchers (:func:`_plan_extras`)."""
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
    sales = _plan_extras(
        sales,
        returns,
        specs,
        chronic={r.member for r in refills},
        seed=seed,
        start=start,
        end=end,
        year_end=expiry_policy in ("year_end", "next_year_end"),
        wallet_share=wallet_share,
        redeem_share=redeem_share,
    )
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
    return dataclasses.replace(sale, seq=seq)


def _plan_extras(
    sales: list[PlannedSale],
    returns: list[PlannedReturn],
    specs: Sequence[MemberSpec],
    *,
    chronic: set[int],
    seed: int,
    start: dt.date,
    end: dt.date,
    year_end: bool,
    wallet_share: float,
    redeem_share: float,
) -> list[PlannedSale]:
    """What members do at the counter besides buying: redeem points, use vouchers, keep stored
    value.

    **Points.** A share of members (older ones more) take rewards when the clerk tells them
    what their points are worth: at about one visit in three one reward (now and then two),
    and, under a year-end clearing, most of them in December, several. Members who have
    vouchers hand one over at most visits (one per receipt: the points vouchers share a
    stacking group); the till takes it when it is worth less than the basket.

    **Stored value** (S-1): ``wallet_share`` of all members, drawn among the regulars (three
    visits a year) and weighted towards older chronic patients (their children top up for
    them), start at one of their visits with their usual amount (larger with an ID number on
    file: an unregistered card holds at most 1 000 CNY, S-2) and from then pay from it; they
    top up again when the balance will not pay the basket.

    Redemptions and top-ups happen a minute or two before the sale they come with, but never
    before a return the member made just before it (the ledgers stay in time order). Drawn
    with one ``random.Random`` per member apart from the sales, so the sales stay as they were.
    """
    by_member: dict[int, list[int]] = defaultdict(list)
    for i, sale in enumerate(sales):
        by_member[sale.member].append(i)
    returned_at: dict[int, list[dt.datetime]] = defaultdict(list)
    for r in returns:
        returned_at[r.member].append(r.at)
    for times in returned_at.values():
        times.sort()
    spec_of = {spec.index: spec for spec in specs}

    def age(member: int) -> int:
        return (end - dt.date.fromisoformat(spec_of[member].data["birthday"])).days // 365

    # Who keeps stored value: P(holder) = min(0.9, k × weight), k set so that the expected
    # number of holders is wallet_share of all members.
    regular = max(1, round(3 * (end - start).days / 365))  # three visits a year
    weights: dict[int, float] = {}
    for member, indices in by_member.items():
        if len(indices) >= regular:
            a = age(member)
            weights[member] = (
                (2.5 if member in chronic else 1.0)
                * (1.8 if a >= 60 else 0.5 if a < 35 else 1.0)
                * min(2.0, len(indices) / 4)
            )
    target = wallet_share * len(specs)
    lo, hi = 0.0, 1.0
    if weights and target > 0:
        while sum(min(0.9, hi * w) for w in weights.values()) < target and hi < 1e6:
            hi *= 2
        for _step in range(40):
            mid = (lo + hi) / 2
            if sum(min(0.9, mid * w) for w in weights.values()) < target:
                lo = mid
            else:
                hi = mid
    k = hi if target > 0 else 0.0

    out = list(sales)
    for member, indices in by_member.items():
        rng = random.Random(f"carecard-demo-counter-{seed}-{member}")
        a = age(member)
        redeemer = rng.random() < min(0.95, redeem_share * (1.2 if a >= 50 else 0.85))
        holder = member in weights and rng.random() < min(0.9, k * weights[member])
        start, amount = len(indices), ZERO
        if holder:
            last = max(1, (len(indices) * 2) // 3)
            start = 0 if rng.random() < 0.4 else rng.randrange(last)
            named = bool(spec_of[member].data.get("id_number"))
            older = a >= 60 or member in chronic
            # A card without an ID number holds at most 1 000 CNY (S-2): its holders keep to
            # smaller amounts.
            amounts = [200, 300, 500, 1000, 2000]
            if older:
                odds = [0, 1, 4, 4, 1] if named else [0, 2, 5, 1, 0]
            else:
                odds = [3, 2, 4, 2, 0] if named else [3, 3, 4, 0, 0]
            amount = Decimal(rng.choices(amounts, weights=odds)[0]).quantize(CENT)
        for n, i in enumerate(indices):
            sale = out[i]
            redeem = 0
            if redeemer:
                if year_end and sale.at.month == 12 and rng.random() < 0.8:
                    redeem = rng.choice([1, 2, 2, 3, 4, 5])
                elif rng.random() < 0.3:
                    redeem = 1 if rng.random() < 0.85 else 2
            voucher = rng.random() < (0.8 if redeemer else 0.4)
            wallet = n >= start and (n == start or rng.random() < 0.93)
            lead = 120
            earlier = bisect.bisect_right(returned_at.get(member, []), sale.at)
            if earlier:
                gap = (sale.at - returned_at[member][earlier - 1]).total_seconds()
                lead = max(0, min(lead, int(gap)))
            out[i] = dataclasses.replace(
                sale,
                redeem=redeem,
                voucher=voucher,
                topup=amount if n >= start else ZERO,
                wallet=wallet,
                lead=lead,
            )
    return out


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


def _listed(priced: PricedBasket, sale: PlannedSale) -> Decimal:
    """What medical insurance pays: the insurance-listed lines, when the member uses it."""
    if not sale.insurance:
        return ZERO
    return sum((pl.net for pl in priced.lines if pl.item.is_insurance_listed), ZERO)


def wallet_room(priced: PricedBasket, sale: PlannedSale, rule: EarningRule) -> Decimal:
    """How much of the basket stored value may pay: what insurance leaves of the lines that
    earn points (C-4a: stored value never pays for special-price, limited or promotional
    items), as ``allocate_tenders`` lays the tenders over the lines."""
    if _listed(priced, sale) <= 0:  # nothing laid over the lines before stored value
        return sum((pl.net for pl in priced.lines if rule.scope.contains(pl.item)), ZERO)
    plain = tenders_for(priced, sale)
    shares = allocate_tenders(priced, [Tender(t.kind, t.amount) for t in plain], rule)
    return sum(
        (
            pl.net - sum(shares[i].values(), ZERO)
            for i, pl in enumerate(priced.lines)
            if rule.scope.contains(pl.item)
        ),
        ZERO,
    )


def tenders_for(
    priced: PricedBasket, sale: PlannedSale, stored_value: Decimal = ZERO
) -> list[counter.TenderIn]:
    """How the member pays the priced basket: insurance for the listed lines (when they use
    it), then up to ``stored_value`` from their stored value (at most :func:`wallet_room`),
    the rest by their usual means. Tenders add up to the net exactly."""
    return _tenders(priced.net, _listed(priced, sale), sale, stored_value)


def _tenders(
    net: Decimal, listed: Decimal, sale: PlannedSale, stored_value: Decimal
) -> list[counter.TenderIn]:
    """:func:`tenders_for` of a basket's net and its insurance-listed part."""
    out = []
    if listed > 0:
        pool = ZERO
        if sale.insurance == "pool":
            pool = (listed * POOL_SHARE).quantize(CENT, rounding=ROUND_HALF_UP)
            out.append(counter.TenderIn(kind="insurance_pool", amount=pool))
        if listed > pool:
            out.append(counter.TenderIn(kind="insurance_personal", amount=listed - pool))
    rest = net - listed
    if rest > 0:
        wallet = min(stored_value, rest)
        if wallet > 0:
            out.append(counter.TenderIn(kind=TenderKind.STORED_VALUE, amount=wallet))
        if rest > wallet:
            out.append(counter.TenderIn(kind=sale.pay, amount=rest - wallet))
    return out


def receipt_no(store: Store, sale: PlannedSale, tz: dt.tzinfo | None = None) -> str:
    """Deterministic receipt numbers (the counter's are random), unique per store."""
    t = sale.at.astimezone(tz or timezone.get_current_timezone())
    stamp = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"
    return f"{store.code}-{stamp}-D{sale.seq:05X}"


def topup_reference(receipt: str) -> str:
    """The top-up slip made with a sale (充值单): the receipt number and ``-CZ``."""
    return f"{receipt}-CZ"


# ---------------------------------------------------------------------------------------------
# At the counter: what a visit's extras come to, given the member's points, vouchers, wallet
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardInfo:
    id: int
    name: str
    points: int
    template_id: int


@dataclass(frozen=True)
class VoucherInfo:
    """A points voucher a member holds: an issued coupon of a points-funded amount-off
    template (a reward's or the rebate ladder's)."""

    id: int
    code: str
    template_id: int
    valid_from: dt.date
    valid_until: dt.date
    issued_at: dt.datetime


class CounterRules:
    """What both writers read once: the rewards demo members take (coupon rewards without
    stock, month or store limits), the voucher templates a member may hand over, and the
    stored-value policy and bonus tiers (S-1, S-2)."""

    def __init__(self) -> None:
        self.templates = {t.pk: t for t in CouponTemplate.objects.all()}
        limited = set(
            CouponTemplate.stores.through.objects.values_list("coupontemplate_id", flat=True)
        )
        self.reward_rows = {
            r.pk: r
            for r in Reward.objects.filter(
                active=True,
                kind__in=(RewardKind.COUPON, RewardKind.SERVICE),
                stock__isnull=True,
            ).select_related("coupon_template")
            if not r.months
            and not r.store_ids
            and r.coupon_template.active
            and r.coupon_template.valid_until is None
            and r.coupon_template.per_member_limit is None
        }
        self.rewards = sorted(
            (
                RewardInfo(r.pk, r.name, r.points, r.coupon_template_id)
                for r in self.reward_rows.values()
            ),
            key=lambda r: (r.points, self.reward_rows[r.id].position, r.id),
        )
        # Voucher templates: what a member holding one hands over at the till.
        self.vouchers: dict[int, Decimal] = {
            pk: t.value
            for pk, t in self.templates.items()
            if t.kind == CouponKind.AMOUNT_OFF
            and t.points_funded
            and t.active
            and t.value
            and pk not in limited
        }
        self.policy = wallet_policy()
        self._tiers: dict[dt.date, list[wallet_rules.BonusTier]] = {}
        self._rules = list(TopupRule.objects.filter(active=True).order_by("min_amount", "pk"))

    def tiers(self, day: dt.date) -> list[wallet_rules.BonusTier]:
        """``wallet.selectors.topup_tiers(day)`` over the rules read once."""
        tiers = self._tiers.get(day)
        if tiers is None:
            tiers = self._tiers[day] = [
                wallet_rules.BonusTier(
                    min_amount=r.min_amount, bonus=r.bonus, rule_id=r.pk, name=r.name
                )
                for r in self._rules
                if (r.valid_from is None or r.valid_from <= day)
                and (r.valid_to is None or r.valid_to >= day)
            ]
        return tiers

    def limit(self, *, real_named: bool) -> Decimal:
        return balance_limit_for(self.policy, real_named=real_named)


def redemption_for(
    rewards: Sequence[RewardInfo], available: int, wish: int
) -> tuple[RewardInfo | None, int]:
    """The reward a member takes and how many: the dearest they can afford (as many as they
    wished for and their points pay), or none."""
    affordable = [r for r in rewards if r.points <= available]
    if wish <= 0 or not affordable:
        return None, 0
    reward = affordable[-1]
    return reward, min(wish, available // reward.points)


def voucher_for(
    held: Sequence[VoucherInfo], values: dict[int, Decimal], net: Decimal, day: dt.date
) -> VoucherInfo | None:
    """The voucher a member hands over: the first to expire of those valid today that is
    worth less than the basket."""
    usable = [
        v
        for v in held
        if v.template_id in values
        and v.valid_from <= day <= v.valid_until
        and values[v.template_id] < net
    ]
    return min(usable, key=lambda v: (v.valid_until, v.issued_at, v.id), default=None)


def topup_for(
    usual: Decimal,
    *,
    balance: Decimal,
    need: Decimal,
    room: Decimal,
    tiers: Sequence[wallet_rules.BonusTier],
) -> Decimal:
    """A top-up before paying ``need`` from a ``balance`` that will not cover it: the usual
    amount, or the most (in hundreds) that still fits the member's limit with its bonus; 0
    when the balance covers the basket or less than 100 CNY fits."""
    if usual <= 0 or balance >= need:
        return ZERO
    fit = wallet_rules.max_topup(room, tiers)
    amount = (min(usual, fit) // 100 * 100).quantize(CENT)
    return amount if amount >= 100 else ZERO


class ServiceSalesWriter:
    """Every sale through ``sale_quote`` and ``sale_commit``, as a POS would send it; the
    redemptions through ``reward_redeem`` and the top-ups through ``wallet_topup``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self._rules: CounterRules | None = None

    @property
    def rules(self) -> CounterRules:
        if self._rules is None:
            self._rules = CounterRules()
        return self._rules

    def sale(self, planned: PlannedSale, *, member_id: int, store: Store, staff: Staff) -> int:
        rules = self.rules
        day = timezone.localdate(planned.at)
        if planned.redeem and rules.rewards:
            self._redeem(planned, member_id=member_id, store=store, staff=staff)
        lines = [counter.LineIn(sku=sku, quantity=qty) for sku, qty in planned.lines]
        quote = counter.sale_quote(
            store_id=store.pk, member_id=member_id, lines=lines, at=planned.at
        )
        codes: list[str] = []
        if planned.voucher and rules.vouchers:
            held = [
                VoucherInfo(*row)
                for row in Coupon.objects.filter(
                    member_id=member_id, status=CouponStatus.ISSUED, template_id__in=rules.vouchers
                ).values_list("pk", "code", "template_id", "valid_from", "valid_until", "issued_at")
            ]
            voucher = voucher_for(held, rules.vouchers, quote.basket.net, day)
            if voucher is not None:
                with_voucher = counter.sale_quote(
                    store_id=store.pk,
                    member_id=member_id,
                    lines=lines,
                    at=planned.at,
                    coupons=[voucher.code],
                )
                if not with_voucher.coupons_refused:
                    quote, codes = with_voucher, [voucher.code]
        number = receipt_no(store, planned)
        stored = ZERO
        payable = (
            wallet_room(quote.basket, planned, config.earning_rule()) if planned.wallet else ZERO
        )
        if payable > 0:
            account = WalletAccount.objects.filter(pk=member_id).first()
            stored = account.balance if account is not None else ZERO
            holder = wallet_holder(member_id)
            if planned.topup and rules.policy.enabled and holder.status in _LIVE:
                at = planned.topup_at
                amount = topup_for(
                    planned.topup,
                    balance=stored,
                    need=payable,
                    room=rules.limit(real_named=holder.real_named) - stored,
                    tiers=rules.tiers(timezone.localdate(at)),
                )
                if amount:
                    stored = wallet_topup(
                        member_id=member_id,
                        amount=amount,
                        tender=planned.pay,
                        at=at,
                        store_id=store.pk,
                        actor=staff,
                        reference=topup_reference(number),
                    ).balance
                    self.counts["topups"] += 1
        tenders = tenders_for(quote.basket, planned, min(stored, payable))
        body = {
            "receipt_no": number,
            "member_id": member_id,
            "lines": [[sku, qty] for sku, qty in planned.lines],
            "tenders": [[t.kind, str(t.amount)] for t in tenders],
            "coupons": codes,
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
            coupons=codes,
            staff=staff,
            receipt_no=number,
        )
        self.counts["coupon_uses"] += len(quote.basket.coupons_applied)
        self.counts["stored_value_payments"] += any(
            t.kind == TenderKind.STORED_VALUE for t in tenders
        )
        return result.sale.pk

    def _redeem(self, planned: PlannedSale, *, member_id: int, store: Store, staff: Staff) -> None:
        member = Member.objects.get(pk=member_id)
        account = PointsAccount.objects.filter(pk=member_id).first()
        if member.status != MemberStatus.ACTIVE or account is None:
            return
        at = planned.redeem_at
        reward, count = redemption_for(
            self.rules.rewards, available_points(account, at=at), planned.redeem
        )
        for _n in range(count):
            assert reward is not None
            reward_redeem(
                member=member,
                reward=self.rules.reward_rows[reward.id],
                store_id=store.pk,
                at=at,
                actor=staff,
            )
            self.counts["redemptions"] += 1

    def expire(self, day: dt.date, at: dt.datetime) -> int:
        return points_expire_due(today=day, at=at)

    def flush(self) -> None:
        """Nothing is buffered."""

    def refresh(self, member_ids: Iterable[int] | None) -> None:
        """Nothing is cached."""

    def close(self) -> None:
        """Nothing runs beside."""


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

    def preparer(self, name: str) -> Callable[[Any], Any]:
        """How ``add`` prepares the field ``name`` (for rows built elsewhere)."""
        return dict(self.prep)[self.names.index(name)]

    def add(self, *values: Any) -> None:
        row = list(values)
        for i, prep in self.prep:
            if row[i] is not None:
                row[i] = prep(row[i])
        self.rows.append(row)

    def insert(self) -> None:
        _insert(self.model, self.names, self.rows)
        self.rows = []

    def update(self) -> None:
        """UPDATE the rows' fields by primary key (the last field)."""
        if not self.rows:
            return
        qn = connection.ops.quote_name
        columns = [qn(self.model._meta.get_field(n).column) for n in self.names]
        sets = ", ".join(f"{c} = %s" for c in columns[:-1])
        sql = f"UPDATE {qn(self.model._meta.db_table)} SET {sets} WHERE {columns[-1]} = %s"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.executemany(sql, self.rows)
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


class _Outcome(NamedTuple):
    """What a priced and paid basket writes, ready for the rows (a worker's guess travels as
    one: plain values pickle far faster than the engines' results)."""

    net: Decimal
    original: Decimal
    discount_total: Decimal
    listed: Decimal  # paid by insurance when the member uses it (_listed)
    payable: Decimal  # what stored value may pay (wallet_room), when the member pays so
    tenders: tuple[tuple[str, Decimal, int, str], ...]  # kind, amount, points, reference
    points: int  # earning.total
    text: str  # earning.text
    rule_label: str
    line_texts: tuple[str, ...]
    # line_no, product id, sku, name, quantity, unit price, original, discount, net, points,
    # explanation (adapted JSON)
    lines: tuple[tuple[Any, ...], ...]
    # line index, kind, rule_ref, coupon code, amount, reason, funded_by, points_funded
    discounts: tuple[tuple[Any, ...], ...]
    coupons: tuple[tuple[str, Decimal], ...]  # applied: code, amount


def _tender_key(tenders: Iterable[counter.TenderIn]) -> tuple[tuple[str, Decimal, int, str], ...]:
    return tuple((t.kind, t.amount, t.points, t.reference) for t in tenders)


def _outcome(
    priced: PricedBasket,
    earning: Any,
    tenders: Sequence[counter.TenderIn],
    *,
    listed: Decimal,
    payable: Decimal,
    product_ids: dict[str, int],
    adapt_json: Callable[[Any], Any],
) -> _Outcome:
    """The rows ``sale_commit`` writes for the basket, without ids."""
    lines = []
    discounts = []
    for pl in priced.lines:
        earned = earning.lines[pl.index]
        lines.append(
            (
                pl.index + 1,
                product_ids[pl.item.sku],
                pl.item.sku,
                pl.item.name,
                pl.quantity,
                pl.item.shelf_price,
                pl.original,
                pl.discount_total,
                pl.net,
                earned.points,
                adapt_json(
                    {
                        "text": earned.text,
                        # allocate_tenders(priced, tenders, rule), as earn_points computed it
                        "tenders": {k: str(v) for k, v in earned.tender_shares.items() if v > 0},
                    }
                ),
            )
        )
        for d in pl.discounts:
            if d.amount > 0:
                discounts.append(
                    (
                        pl.index,
                        d.kind,
                        str(d.rule_id or ""),
                        d.coupon_code or "",
                        d.amount,
                        d.reason,
                        d.funded_by,
                        d.points_funded,
                    )
                )
    return _Outcome(
        net=priced.net,
        original=priced.original,
        discount_total=priced.discount_total,
        listed=listed,
        payable=payable,
        tenders=_tender_key(tenders),
        points=earning.total,
        text=earning.text,
        rule_label=earning.rule_label,
        line_texts=tuple(ln.text for ln in earning.lines),
        lines=tuple(lines),
        discounts=tuple(discounts),
        coupons=tuple((c.code, c.amount) for c in priced.coupons_applied),
    )


@dataclass
class _MemberState:
    """What the counter reads and writes about a member, kept between flushes."""

    id: int
    status: str
    birthday: dt.date | None
    birthday_is_lunar: bool
    lunar_birthday: str
    pricing: PricingMember | None = None
    account: PointsAccount | _Account | None = None
    stats: MemberStats | _Stats | None = None
    tier: MemberTier | None = None
    real_named: bool = False  # an ID number is on file (S-2)
    # Open lots: [id, expires_on, remaining, available_at].
    lots: list[list[Any]] = field(default_factory=list)
    earns: list[tuple[dt.datetime, int]] = field(default_factory=list)
    wallet: _Wallet | None = None
    vouchers: list[_Voucher] = field(default_factory=list)  # points vouchers not yet used
    dirty: bool = False
    tier_dirty: bool = False
    wallet_dirty: bool = False
    activated: bool = False


@dataclass
class _Account:
    """A new ``PointsAccount`` (model instances cost more to build than the sale they serve)."""

    balance: int = 0
    debt: int = 0
    lifetime_earned: int = 0
    lifetime_spent: int = 0
    lifetime_expired: int = 0
    updated_at: dt.datetime | None = None


@dataclass
class _Stats:
    """A new ``MemberStats``, its fields' defaults."""

    first_purchase_at: dt.datetime | None = None
    last_purchase_at: dt.datetime | None = None
    last_store_id: int | None = None
    visits: int = 0
    spend: Decimal = ZERO
    visits_12m: int = 0
    spend_12m: Decimal = ZERO
    months: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class _Wallet:
    """A member's ``WalletAccount`` as the bulk writer keeps it."""

    balance: Decimal = ZERO
    principal: Decimal = ZERO
    bonus: Decimal = ZERO
    lifetime_topup: Decimal = ZERO
    lifetime_bonus: Decimal = ZERO
    lifetime_paid: Decimal = ZERO
    lifetime_refunded: Decimal = ZERO


@dataclass
class _Voucher:
    """A points voucher (``Coupon``) a member holds; ``new`` until the batch inserts it."""

    info: VoucherInfo
    member_id: int
    new: bool = False
    source_reference: str = ""
    campaign_code: str = ""
    issued_by: int | None = None
    status: str = CouponStatus.ISSUED
    redeemed_at: dt.datetime | None = None
    redeemed_store: int | None = None
    redeemed_reference: str = ""
    redeemed_amount: Decimal | None = None


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

    The counter's extras are mirrored too: a redemption as ``reward_redeem`` writes it
    (``points_spend``'s entry and lot uses, ``coupon_issue``'s coupon, the redemption row), a
    voucher used as ``coupons_redeem`` marks it (the coupon and its ``redeemed`` event), a
    top-up as ``wallet_topup`` books it (top-up and bonus entries) and a stored-value tender as
    ``wallet_pay`` (a payment split pro rata between principal and bonus). Coupon codes are
    drawn by ``coupons.rules.generate_code``, as the service draws them.
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
        self.counts: dict[str, int] = defaultdict(int)
        self.service = ServiceSalesWriter()
        self.service.counts = self.counts
        self.counter = self.service.rules
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
            self.items[p.sku] = config.engine_item(p)
        self.rules: dict[int | None, Any] = {}
        self.members: dict[int, _MemberState] = {
            pk: _MemberState(pk, status, birthday, is_lunar, lunar, real_named=bool(real))
            for pk, status, birthday, is_lunar, lunar, real in Member.objects.annotate(
                real=Case(When(id_number="", then=Value(False)), default=Value(True))
            ).values_list("pk", "status", "birthday", "birthday_is_lunar", "lunar_birthday", "real")
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
        self.adapt_line_json = self.lines.preparer("explanation")
        self.ahead: workers.Stream | None = None  # the pricing worker (speculate)
        self.ahead_position: Any = None
        self.ahead_buffer: collections.deque[tuple[Any, ...]] = collections.deque()
        self.ahead_used = 0
        self.new_vouchers: list[_Voucher] = []
        self.used_vouchers: list[_Voucher] = []  # inserted earlier, used since
        self.coupons = _Rows(
            Coupon,
            [
                "id",
                "template",
                "member",
                "code",
                "status",
                "issued_at",
                "valid_from",
                "valid_until",
                "source",
                "source_reference",
                "campaign_code",
                "batch",
                "issued_by",
                "issued_store",
                "claimed_at",
                "redeemed_at",
                "redeemed_store",
                "redeemed_reference",
                "redeemed_amount",
            ],
        )
        self.coupon_updates = _Rows(
            Coupon,
            [
                "status",
                "redeemed_at",
                "redeemed_store",
                "redeemed_reference",
                "redeemed_amount",
                "id",
            ],
        )
        self.coupon_events = _Rows(
            CouponEvent,
            ["coupon", "member", "kind", "at", "store", "actor", "reference", "amount", "reason"]
            + ["detail"],
        )
        self.redemptions = _Rows(
            RewardRedemption, ["member", "reward", "entry", "coupon", "store", "at"]
        )
        self.wallet_entries = _Rows(
            WalletEntry,
            [
                "id",
                "member",
                "kind",
                "amount",
                "principal",
                "bonus",
                "balance_after",
                "at",
                "store",
                "actor",
                "tender",
                "reference",
                "reason",
                "detail",
                "corrects",
            ],
        )
        self.wallets = _Rows(
            WalletAccount,
            [
                "member",
                "balance",
                "principal",
                "bonus",
                "lifetime_topup",
                "lifetime_bonus",
                "lifetime_paid",
                "lifetime_refunded",
                "updated_at",
            ],
        )
        self.refresh(None)

    # -- pricing ahead on a second core ----------------------------------------------------

    def speculate(
        self, sales: Sequence[PlannedSale], members: dict[int, int], stores: Sequence[Store]
    ) -> None:
        """Have a worker process price the planned baskets and their points ahead of the
        writes (``workers``), as each would be priced with no voucher, for a member whose
        status follows the purchase entry rule and whose stored value follows the top-ups and
        payments of the guesses before.

        :meth:`sale` takes a guess only when it is there already and the member, the store's
        region and the tenders are what the sale meets, so a wrong or late guess costs at most
        the pricing it would have saved, never a different row or a wait. The worker keeps
        ahead of the sale being written (it skips to it when it falls behind). It duplicates
        work to save time, so it runs only when a core looks free (``workers.idle_core``): on a
        busy machine it would take that time from this process.
        Not for chains with tiers, purchase rules or a rebate ladder (their sales change
        pricing the guess does not follow, or go through ``sale_commit``)."""
        inline = SPECULATE == "inline"
        if self.tiers or self.purchase_rules or self.ladder:
            return
        if not inline and (SPECULATE != "worker" or not workers.idle_core()):
            return
        regions = [store.region_id for store in stores]
        for region in set(regions):
            self._region_rules(region)  # read before the fork
        # Where the writer is (the worker skips what it has passed); inline, never anywhere.
        position = self.ahead_position = multiprocessing.get_context("fork").RawValue(
            "q", -(2**62) if inline else -1
        )

        def produce(send: Callable[[Any], None]) -> None:
            status: dict[int, str] = {}
            wallets: dict[int, Decimal] = {}  # balances as the guesses leave them
            birthdays: dict[int, Any] = {}
            chunk: list[tuple[Any, ...]] = []
            for sale in sales:
                member_id = members[sale.member]
                st = self.members[member_id]
                state = status.get(member_id, st.status)
                behind = sale.seq < position.value + AHEAD_MIN
                if behind and state != MemberStatus.PENDING:
                    continue  # the writer is there already
                if member_id not in birthdays:
                    birthdays[member_id] = birthday_info(
                        st.birthday, is_lunar=st.birthday_is_lunar, lunar_birthday=st.lunar_birthday
                    )
                member = PricingMember(
                    is_member=state == MemberStatus.ACTIVE, tier=None, birthday=birthdays[member_id]
                )
                day = sale.at.astimezone(self.tz).date()
                region = regions[sale.store]
                priced = self._price(sale, member, self._region_rules(region), [], day)
                if (
                    state == MemberStatus.PENDING
                    and self.entry_min is not None
                    and priced.net >= self.entry_min
                ):
                    status[member_id] = MemberStatus.ACTIVE
                if behind:
                    continue  # priced only to follow the member's status
                listed = _listed(priced, sale)
                payable = wallet_room(priced, sale, self.earning) if sale.wallet else ZERO
                stored = ZERO
                if payable > 0:  # the member's stored value, as sale() will find it
                    balance = wallets.get(member_id)
                    if balance is None:
                        balance = st.wallet.balance if st.wallet is not None else ZERO
                    if (
                        sale.topup
                        and balance < payable
                        and self.counter.policy.enabled
                        and state in _LIVE
                    ):
                        tiers = self.counter.tiers(sale.topup_at.astimezone(self.tz).date())
                        amount = topup_for(
                            sale.topup,
                            balance=balance,
                            need=payable,
                            room=self.counter.limit(real_named=st.real_named) - balance,
                            tiers=tiers,
                        )
                        balance += amount + wallet_rules.bonus_for(amount, tiers)
                    stored = min(balance, payable)
                    wallets[member_id] = balance - stored
                tenders = _tenders(priced.net, listed, sale, stored)
                earning = earn_points(
                    priced, [Tender(t.kind, t.amount) for t in tenders], self.earning, member, day
                )
                guess = _outcome(
                    priced,
                    earning,
                    tenders,
                    listed=listed,
                    payable=payable,
                    product_ids=self.product_ids,
                    adapt_json=self.adapt_line_json,
                )
                chunk.append((sale.seq, member, region, guess))
                if len(chunk) == 100:
                    send(chunk)
                    chunk = []
            send(chunk)

        if inline:
            produce(self.ahead_buffer.extend)
        else:
            self.ahead = workers.Stream(produce, reader=True)

    def _ahead(self, seq: int) -> tuple[Any, ...] | None:
        """The worker's guess for sale ``seq``, if it has come (sales come in ``seq``
        order); tells the worker where the writer is."""
        buffer = self.ahead_buffer
        if self.ahead is not None:
            self.ahead_position.value = seq
            try:
                for chunk in self.ahead.poll():
                    buffer.extend(chunk)
            except RuntimeError:
                # Guesses only save time: without them every sale is priced here.
                self.ahead = None
        while buffer and buffer[0][0] < seq:
            buffer.popleft()  # too late, or a sale that went through sale_commit
        if buffer and buffer[0][0] == seq:
            return buffer.popleft()
        return None

    def close(self) -> None:
        """End the pricing worker, if one is still running."""
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None

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
            st.account = st.stats = st.tier = st.wallet = None
            st.lots = []
            st.earns = []
            st.vouchers = []
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
        for lot_id, member_id, expires_on, remaining, available_at in scoped(
            PointsLot.objects.filter(remaining__gt=0).order_by("pk")
        ).values_list("pk", "member_id", "expires_on", "remaining", "available_at"):
            self.members[member_id].lots.append([lot_id, expires_on, remaining, available_at])
        for member_id, *values in scoped(WalletAccount.objects.all()).values_list(
            "member_id",
            "balance",
            "principal",
            "bonus",
            "lifetime_topup",
            "lifetime_bonus",
            "lifetime_paid",
            "lifetime_refunded",
        ):
            self.members[member_id].wallet = _Wallet(*values)
        if self.counter.vouchers:
            for row in scoped(
                Coupon.objects.filter(
                    status=CouponStatus.ISSUED, template_id__in=self.counter.vouchers
                ).order_by("pk")
            ).values_list(
                "member_id", "pk", "code", "template_id", "valid_from", "valid_until", "issued_at"
            ):
                self.members[row[0]].vouchers.append(_Voucher(VoucherInfo(*row[1:]), row[0]))
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
        self.next_coupon = (Coupon.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
        self.next_wallet_entry = (WalletEntry.objects.aggregate(m=Max("pk"))["m"] or 0) + 1

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

    def _price(
        self,
        planned: PlannedSale,
        member: PricingMember,
        rules: Any,
        coupons: list[Any],
        day: dt.date,
    ) -> PricedBasket:
        return price_basket(
            [Line(self.items[sku], qty) for sku, qty in planned.lines],
            member,
            rules,
            coupons,
            self.policy,
            day,
        )

    def _region_rules(self, region_id: int | None) -> Any:
        rules = self.rules.get(region_id)
        if rules is None:
            rules = self.rules[region_id] = config.pricing_rules(region_id)
        return rules

    # -- one sale: sale_commit's writes ----------------------------------------------------

    def sale(self, planned: PlannedSale, *, member_id: int, store: Store, staff: Staff) -> int:
        st = self.members[member_id]
        if self._needs_service(st):
            self.flush()
            sale_id = self.service.sale(planned, member_id=member_id, store=store, staff=staff)
            self.refresh([member_id])
            return sale_id
        at = planned.at
        local = at.astimezone(self.tz)
        day = local.date()
        if planned.redeem and self.counter.rewards:
            self._redeem(st, planned, store=store, staff=staff)
        member = self._pricing(st)
        ahead = self._ahead(planned.seq)
        if ahead is not None and (ahead[1] != member or ahead[2] != store.region_id):
            ahead = None
        guess: _Outcome | None = ahead[3] if ahead is not None else None
        rules = self._region_rules(store.region_id)
        priced: PricedBasket | None = None
        if guess is None:
            priced = self._price(planned, member, rules, [], day)
        net = guess.net if guess is not None else priced.net  # type: ignore[union-attr]
        if planned.voucher and st.vouchers:
            voucher = voucher_for([v.info for v in st.vouchers], self.counter.vouchers, net, day)
            if voucher is not None:
                try:
                    terms = self.counter.templates[voucher.template_id].terms()
                    coupon = coupon_rules.engine_coupon(terms, voucher.code)
                except (coupon_rules.CouponTemplateError, PricingError):
                    coupon = None  # coupons_for_checkout: template_invalid
                if coupon is not None:
                    with_voucher = self._price(planned, member, rules, [coupon], day)
                    if not with_voucher.coupons_rejected:
                        priced, guess = with_voucher, None
        if priced is not None:
            net = priced.net
            listed = _listed(priced, planned)
            payable = wallet_room(priced, planned, self.earning) if planned.wallet else ZERO
        else:
            assert guess is not None
            listed, payable = guess.listed, guess.payable
        number = receipt_no(store, planned, self.tz)
        stored = ZERO
        if payable > 0:
            stored = st.wallet.balance if st.wallet is not None else ZERO
            if (
                planned.topup
                and stored < payable
                and self.counter.policy.enabled
                and st.status in _LIVE
            ):
                topup_at = planned.topup_at
                amount = topup_for(
                    planned.topup,
                    balance=stored,
                    need=payable,
                    room=self.counter.limit(real_named=st.real_named) - stored,
                    tiers=self.counter.tiers(topup_at.astimezone(self.tz).date()),
                )
                if amount:
                    stored = self._topup(
                        st,
                        amount,
                        tender=planned.pay,
                        at=topup_at,
                        store=store,
                        staff=staff,
                        reference=topup_reference(number),
                    )
        tenders = _tenders(net, listed, planned, min(stored, payable))
        if sum((t.amount for t in tenders), ZERO) != net:  # pragma: no cover
            raise AssertionError("tenders must cover the net")
        if guess is not None and guess.tenders == _tender_key(tenders):
            outcome = guess
            self.ahead_used += 1
        else:
            if priced is None:
                priced = self._price(planned, member, rules, [], day)
            earning = earn_points(
                priced, [Tender(t.kind, t.amount) for t in tenders], self.earning, member, day
            )
            outcome = _outcome(
                priced,
                earning,
                tenders,
                listed=listed,
                payable=payable,
                product_ids=self.product_ids,
                adapt_json=self.adapt_line_json,
            )
        sale_id = self.next_sale
        self.next_sale += 1
        line_ids = []
        for line in outcome.lines:
            line_id = self.next_line
            self.next_line += 1
            line_ids.append(line_id)
            # id, sale, member, line_no … points, returned_quantity, returns_line, explanation
            self.lines.rows.append([line_id, sale_id, member_id, *line[:10], 0, None, line[10]])
        for d in outcome.discounts:
            self.discounts.rows.append([line_ids[d[0]], member_id, *d[1:]])
        for t in tenders:
            self.tenders.add(sale_id, member_id, t.kind, t.amount, t.points, t.reference)
        # lock_account: the account exists from the member's first sale on.
        account = st.account
        if account is None:
            account = st.account = _Account()
        earned = 0
        if outcome.points > 0:
            earned = outcome.points
            self._earn(st, account, earned, at, day, store.pk, sale_id, outcome)
        if (
            st.status == MemberStatus.PENDING
            and self.entry_min is not None
            and net >= self.entry_min
        ):
            st.status = MemberStatus.ACTIVE
            st.activated = True
        stats = st.stats
        if stats is None:
            stats = st.stats = _Stats()
        counter_stats_add(stats, at=at, store_id=store.pk, amount=net, visit=1, tz=self.tz)
        if self.spend_benefits and st.status == MemberStatus.ACTIVE:
            # _spend_benefits: the yearly-spend thresholds this sale crossed; the coupons are
            # issued by coupon_issue itself when the rows are written.
            year = local.year
            after = sum(
                (Decimal(v) for m, (_n, v) in stats.months.items() if m[:4] == str(year)), ZERO
            )
            for benefit in self.spend_benefits:
                if after - net < benefit.threshold <= after:
                    self.benefits_due.append((benefit, member_id, at, staff, year))
        self._tier_evaluate(st, counter.measures(stats, account.lifetime_earned), at)
        self.dirty[member_id] = st
        self.sales.add(
            sale_id,
            number,
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
            outcome.original,
            outcome.discount_total,
            net,
            earned,
            0,
            account.balance,
            ZERO,
            {"text": outcome.text},
        )
        for code, amount in outcome.coupons:
            self._use_voucher(st, code, amount, sale_id=sale_id, at=at, store=store, staff=staff)
        for t in tenders:
            if t.kind == TenderKind.STORED_VALUE:
                self._wallet_pay(st, t.amount, sale_id=sale_id, at=at, store=store, staff=staff)
                self.counts["stored_value_payments"] += 1
        return sale_id

    # -- the counter's extras: reward_redeem, coupons_redeem, wallet_topup, wallet_pay ------

    def _usable_lots(self, st: _MemberState, at: dt.datetime) -> list[list[Any]]:
        """``points._open_lots``: unexpired lots with points left that are available at
        ``at``, soonest expiry first (lots that never expire last), then oldest first."""
        day = at.astimezone(self.tz).date()
        lots = [
            lot
            for lot in st.lots
            if lot[2] > 0 and (lot[1] is None or lot[1] >= day) and lot[3] <= at
        ]
        lots.sort(key=lambda lot: (lot[1] is None, lot[1] or day, lot[0]))
        return lots

    def _redeem(
        self, st: _MemberState, planned: PlannedSale, *, store: Store, staff: Staff
    ) -> None:
        """As many ``reward_redeem`` calls as the member takes rewards."""
        account = st.account
        if st.status != MemberStatus.ACTIVE or account is None:
            return
        at = planned.redeem_at
        lots = self._usable_lots(st, at)
        available = max(0, sum(lot[2] for lot in lots) - account.debt)
        reward, count = redemption_for(self.counter.rewards, available, planned.redeem)
        for _n in range(count):
            assert reward is not None
            self._redeem_one(st, account, reward, lots, at=at, store=store, staff=staff)
        if count:
            st.lots = [lot for lot in st.lots if lot[2] > 0]
            self.dirty[st.id] = st

    def _redeem_one(
        self,
        st: _MemberState,
        account: PointsAccount | _Account,
        reward: RewardInfo,
        lots: list[list[Any]],
        *,
        at: dt.datetime,
        store: Store,
        staff: Staff,
    ) -> None:
        """reward_redeem: points_spend (an entry, the lots oldest expiry first), then
        coupon_issue (a coupon of the reward's template) and the redemption row."""
        points = reward.points
        account.balance -= points
        entry_id = self.next_entry
        self.next_entry += 1
        self.entries.add(
            entry_id,
            st.id,
            EntryKind.REDEEM,
            -points,
            account.balance,
            at,
            store.pk,
            staff.pk,
            f"reward:{reward.id}",
            _("积分兑换：%(n)s") % {"n": reward.name},
            {},
            None,
        )
        taken = 0
        for lot in lots:
            if taken == points:
                break
            part = min(lot[2], points - taken)
            if part <= 0:
                continue
            lot[2] -= part
            taken += part
            self.lot_uses.add(entry_id, lot[0], st.id, part)
            self.lot_updates.append((lot[2], lot[0]))
        account.lifetime_spent += points
        template = self.counter.templates[reward.template_id]
        valid_from, valid_until = coupon_rules.validity_window(
            at.astimezone(self.tz).date(),
            valid_from=template.valid_from,
            valid_until=template.valid_until,
            valid_days=template.valid_days,
        )
        coupon_id = self.next_coupon
        self.next_coupon += 1
        voucher = _Voucher(
            VoucherInfo(
                coupon_id,
                coupon_rules.generate_code(),
                template.pk,
                valid_from,
                valid_until,
                at,
            ),
            st.id,
            new=True,
            source_reference=f"points_entry:{entry_id}",
            campaign_code=(template.campaign_code or "").strip(),
            issued_by=staff.pk,
        )
        self.new_vouchers.append(voucher)
        if template.pk in self.counter.vouchers:
            st.vouchers.append(voucher)
        self.redemptions.add(st.id, reward.id, entry_id, coupon_id, store.pk, at)
        self.counts["redemptions"] += 1

    def _use_voucher(
        self,
        st: _MemberState,
        code: str,
        amount: Decimal,
        *,
        sale_id: int,
        at: dt.datetime,
        store: Store,
        staff: Staff,
    ) -> None:
        """coupons_redeem: the coupon is used by this sale, with a ``redeemed`` event."""
        voucher = next(v for v in st.vouchers if v.info.code == code)
        st.vouchers.remove(voucher)
        voucher.status = CouponStatus.REDEEMED
        voucher.redeemed_at = at
        voucher.redeemed_store = store.pk
        voucher.redeemed_reference = f"sale:{sale_id}"
        voucher.redeemed_amount = amount
        if not voucher.new:
            self.used_vouchers.append(voucher)
        self.coupon_events.add(
            voucher.info.id,
            st.id,
            EventKind.REDEEMED,
            at,
            store.pk,
            staff.pk,
            voucher.redeemed_reference,
            amount,
            "",
            {},
        )
        self.counts["coupon_uses"] += 1

    def _wallet_entry(
        self, st: _MemberState, kind: str, split: wallet_rules.Split, at: dt.datetime, **fields: Any
    ) -> int:
        """wallet.services._entry: book ``split`` on the wallet and write its entry."""
        wallet = st.wallet
        assert wallet is not None
        wallet.principal += split.principal
        wallet.bonus += split.bonus
        wallet.balance = wallet.principal + wallet.bonus
        entry_id = self.next_wallet_entry
        self.next_wallet_entry += 1
        self.wallet_entries.add(
            entry_id,
            st.id,
            kind,
            split.total,
            split.principal,
            split.bonus,
            wallet.balance,
            at,
            fields.get("store"),
            fields.get("actor"),
            fields.get("tender", ""),
            fields.get("reference", ""),
            "",
            fields.get("detail", {}),
            None,
        )
        st.wallet_dirty = True
        self.dirty[st.id] = st
        return entry_id

    def _topup(
        self,
        st: _MemberState,
        amount: Decimal,
        *,
        tender: str,
        at: dt.datetime,
        store: Store,
        staff: Staff,
        reference: str,
    ) -> Decimal:
        """wallet_topup: the payment, then the bonus of the best tier it reaches; returns the
        balance."""
        if st.wallet is None:
            st.wallet = _Wallet()  # lock_wallet creates the account
        tier = wallet_rules.best_tier(amount, self.counter.tiers(at.astimezone(self.tz).date()))
        bonus = tier.bonus if tier else ZERO
        common = {"store": store.pk, "actor": staff.pk, "reference": reference}
        entry_id = self._wallet_entry(
            st,
            WalletEntryKind.TOPUP,
            wallet_rules.Split(amount, ZERO),
            at,
            tender=tender,
            **common,
        )
        if tier is not None:
            detail = {
                "rule_id": tier.rule_id,
                "rule": tier.name,
                "min_amount": str(tier.min_amount),
                "bonus": str(tier.bonus),
                "topup_entry": entry_id,
            }
            self._wallet_entry(
                st,
                WalletEntryKind.BONUS,
                wallet_rules.Split(ZERO, bonus),
                at,
                detail=detail,
                **common,
            )
        st.wallet.lifetime_topup += amount
        st.wallet.lifetime_bonus += bonus
        self.counts["topups"] += 1
        return st.wallet.balance

    def _wallet_pay(
        self,
        st: _MemberState,
        amount: Decimal,
        *,
        sale_id: int,
        at: dt.datetime,
        store: Store,
        staff: Staff,
    ) -> None:
        """wallet_pay: principal and bonus in proportion to what the member holds."""
        wallet = st.wallet
        assert wallet is not None
        split = wallet_rules.split_payment(amount, principal=wallet.principal, bonus=wallet.bonus)
        self._wallet_entry(
            st,
            WalletEntryKind.PAY,
            -split,
            at,
            store=store.pk,
            actor=staff.pk,
            reference=f"sale:{sale_id}",
            detail={"order": "pro_rata"},
        )
        wallet.lifetime_paid += amount

    def _earn(
        self,
        st: _MemberState,
        account: PointsAccount | _Account,
        points: int,
        at: dt.datetime,
        day: dt.date,
        store_id: int,
        sale_id: int,
        outcome: _Outcome,
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
            outcome.rule_label,
            {"text": outcome.text, "lines": list(outcome.line_texts)},
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
        available_at = at + dt.timedelta(days=self.program.pending_days)
        self.lots.add(
            lot_id,
            st.id,
            entry_id,
            at,
            available_at,
            expires_on,
            points,
            points - repay,
        )
        if points - repay > 0:
            st.lots.append([lot_id, expires_on, points - repay, available_at])
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
            w = st.wallet
            if st.wallet_dirty and w is not None:
                self.wallets.add(
                    st.id,
                    w.balance,
                    w.principal,
                    w.bonus,
                    w.lifetime_topup,
                    w.lifetime_bonus,
                    w.lifetime_paid,
                    w.lifetime_refunded,
                    now,
                )
                st.wallet_dirty = False
        self.dirty = {}
        for v in self.new_vouchers:
            self.coupons.add(
                v.info.id,
                v.info.template_id,
                v.member_id,
                v.info.code,
                v.status,
                v.info.issued_at,
                v.info.valid_from,
                v.info.valid_until,
                CouponSource.POINTS_REDEMPTION,
                v.source_reference,
                v.campaign_code,
                None,
                v.issued_by,
                None,
                None,
                v.redeemed_at,
                v.redeemed_store,
                v.redeemed_reference,
                v.redeemed_amount,
            )
            v.new = False
        for v in self.used_vouchers:
            self.coupon_updates.add(
                v.status,
                v.redeemed_at,
                v.redeemed_store,
                v.redeemed_reference,
                v.redeemed_amount,
                v.info.id,
            )
        self.new_vouchers, self.used_vouchers = [], []
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
            self.coupons.insert()
            self.coupon_updates.update()
            self.coupon_events.insert()
            self.redemptions.insert()
            self.wallet_entries.insert()
            self.wallets.upsert()
            if connection.vendor == "postgresql":
                # Explicit ids bypass the sequences: move them past, for the services.
                with connection.cursor() as cursor:
                    for sql in connection.ops.sequence_reset_sql(
                        no_style(), [Sale, SaleLine, PointsEntry, PointsLot, Coupon, WalletEntry]
                    ):
                        cursor.execute(sql)
            for benefit, member_id, at, staff, year in self.benefits_due:
                coupon_services.coupon_issue(
                    template=benefit.coupon_template,
                    member=Member.objects.get(pk=member_id),
                    at=at,
                    source="campaign",
                    reference=f"spend_benefit:{benefit.pk}:{year}",
                    actor=staff,
                )
            if self.benefits_due:  # they took the next coupon ids
                self.next_coupon = (Coupon.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
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


def counter_stats_add(
    stats: MemberStats | _Stats,
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
    if isinstance(out, BulkSalesWriter):
        out.speculate(plan.sales, members, stores)
    try:
        return _replay(plan, out, members=members, stores=stores, staff=staff, say=say, batch=batch)
    finally:
        out.close()


def _replay(
    plan: SalesPlan,
    out: BulkSalesWriter | ServiceSalesWriter,
    *,
    members: dict[int, int],
    stores: Sequence[Store],
    staff: dict[str, Staff],
    say: Callable[[str], None],
    batch: int,
) -> dict[str, int]:
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
    for name in ("redemptions", "coupon_uses", "topups", "stored_value_payments"):
        ctx.counts[name] = out.counts[name]
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
    entry_key: dict[int, str] = {}
    entries = list(PointsEntry.objects.order_by("pk").values())
    seen: dict[int, int] = defaultdict(int)
    for e in entries:
        seen[e["member_id"]] += 1  # the member's n-th entry: the ledger's order
        entry_key[e["id"]] = f"{phone[e['member_id']]}/{seen[e['member_id']]}"

    def ref(text: str) -> str:
        kind, _sep, pk = text.partition(":")
        if kind in ("sale", "return") and pk.isdigit():
            return f"{kind}:{sale_key[int(pk)]}"
        if kind == "points_entry" and pk.isdigit():
            return f"{kind}:{entry_key[int(pk)]}"
        return text

    # Coupons by whom, what, when and why (their codes are random).
    templates = dict(CouponTemplate.objects.values_list("pk", "name"))
    coupon_key: dict[int, str] = {}
    code_key: dict[str, str] = {}
    same: dict[str, int] = defaultdict(int)
    coupons = list(Coupon.objects.order_by("pk").values())
    for c in coupons:
        key = "|".join(
            [
                str(phone.get(c["member_id"])),
                templates[c["template_id"]],
                c["issued_at"].isoformat(),
                ref(c["source_reference"]),
            ]
        )
        same[key] += 1
        coupon_key[c["id"]] = code_key[c["code"]] = f"{key}#{same[key]}"

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
                code_key.get(d["coupon_code"], d["coupon_code"]),
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
    for c in coupons:
        out["coupons"].append(
            [
                coupon_key[c["id"]],
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
                store.get(c["redeemed_store_id"]),
                c["claimed_at"],
            ]
        )
    for ev in CouponEvent.objects.values():
        detail = dict(ev["detail"] or {})
        if "redeemed_reference" in detail:
            detail["redeemed_reference"] = ref(detail["redeemed_reference"])
        if "redeemed_store_id" in detail:
            detail["redeemed_store_id"] = store.get(detail["redeemed_store_id"])
        out["coupon_events"].append(
            [
                coupon_key[ev["coupon_id"]],
                phone.get(ev["member_id"]),
                ev["kind"],
                ev["at"],
                store.get(ev["store_id"]),
                staff.get(ev["actor_id"]),
                ref(ev["reference"]),
                ev["amount"],
                ev["reason"],
                detail,
            ]
        )
    rewards = dict(Reward.objects.values_list("pk", "name"))
    for r in RewardRedemption.objects.values():
        out["redemptions"].append(
            [
                phone[r["member_id"]],
                rewards[r["reward_id"]],
                entry_key[r["entry_id"]],
                coupon_key.get(r["coupon_id"]),
                store.get(r["store_id"]),
                r["at"],
            ]
        )
    wallet_key: dict[int, str] = {}
    wallet_entries = list(WalletEntry.objects.order_by("pk").values())
    seen = defaultdict(int)
    for w in wallet_entries:
        seen[w["member_id"]] += 1
        wallet_key[w["id"]] = f"{phone[w['member_id']]}/w{seen[w['member_id']]}"
    for w in wallet_entries:
        detail = dict(w["detail"] or {})
        if "topup_entry" in detail:
            detail["topup_entry"] = wallet_key[detail["topup_entry"]]
        out["wallet_entries"].append(
            [
                wallet_key[w["id"]],
                w["kind"],
                w["amount"],
                w["principal"],
                w["bonus"],
                w["balance_after"],
                w["at"],
                store.get(w["store_id"]),
                staff.get(w["actor_id"]),
                w["tender"],
                ref(w["reference"]),
                w["reason"],
                detail,
                wallet_key.get(w["corrects_id"]),
            ]
        )
    for a in WalletAccount.objects.values():
        out["wallets"].append(
            [
                phone[a["member_id"]],
                a["balance"],
                a["principal"],
                a["bonus"],
                a["lifetime_topup"],
                a["lifetime_bonus"],
                a["lifetime_paid"],
                a["lifetime_refunded"],
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

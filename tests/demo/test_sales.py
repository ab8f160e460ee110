"""The demo chain's year of sales (I-4): the plan's shape, and the bulk writer proven to write
exactly what the counter services write."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from statistics import mean

import pytest
from django.core.management import call_command

from carecard.checkout.models import Sale, SaleLine
from carecard.checkout.presets import PRESETS
from carecard.cli import DEMO_PRESETS
from carecard.coupons.models import Coupon
from carecard.demo import data as D
from carecard.demo import sales as demo_sales
from carecard.demo.generator import DEMO_PRESET, generate_demo, store_count
from carecard.demo.people import StoreSpec, ZoneInfoSpec, group_count, member_specs
from carecard.demo.sales import (
    DEAL_WAIT,
    EARLY_TOP_UP,
    FLU_MONTHS,
    MAX_LATE,
    NEEDS,
    WALLET_SHARE,
    PlannedExpiry,
    PlannedReturn,
    PlannedSale,
    ProductInfo,
    SalesPlan,
    plan_sales,
    redemption_for,
    sales_fingerprint,
    sales_rows,
    topup_for,
    voucher_for,
    window_start,
)
from carecard.loyalty.models import EntryKind, PointsEntry, RewardRedemption, TierChange
from carecard.loyalty.rules import Schedule, matches
from carecard.loyalty.selectors import verify_points
from carecard.members.models import Member, MemberStatus
from carecard.wallet.models import TopupRule, WalletAccount, WalletEntry
from carecard.wallet.rules import BonusTier
from carecard.wallet.selectors import verify_wallets

PASSWORD = "demo-Pass-2026"
TODAY = dt.date(2026, 10, 30)
LUNAR_MEMBER_DAYS = Schedule(kind="lunar_days", days=(8, 18, 28))


# --- the plan, pure ---------------------------------------------------------------------------


def _products() -> list[ProductInfo]:
    """The demo catalogue as the plan sees it, built from data.py as the generator builds it."""
    classes = {code: item_class for code, _name, _parent, item_class in D.CATEGORIES}
    out = []
    for cat, name, _ingredients, _classes, _dose, per_day, flags, variants in D.PRODUCTS:
        for _brand, _maker, _spec, pack, _unit, _price in variants:
            days = pack // per_day if per_day else None
            out.append((cat, name, days, "ins" in flags.split()))
    for cat, name, _brand, _maker, _spec, _pack, _unit, _price, flags, days in D.ITEMS:
        out.append((cat, name, days, "ins" in flags.split()))
    return [
        ProductInfo(f"{100001 + n}", name, cat, classes[cat], days, listed)
        for n, (cat, name, days, listed) in enumerate(out)
    ]


def _stores(n: int) -> list[StoreSpec]:
    from carecard.demo.generator import _staff_plan

    stores = []
    for index, site in enumerate(D.STORE_SITES[:n]):
        region, district, _short, _street, opened_on, weight, zones = site
        zone_specs = tuple(
            ZoneInfoSpec(index, name, district, road, tuple(communities), 5000)
            for name, road, communities in zones
        )
        staff = tuple((u, share) for u, _role, share in _staff_plan(index, weight))
        stores.append(StoreSpec(index, region, district, opened_on, weight, zone_specs, staff))
    return stores


def _plan(seed: int = 42, members: int = 3000, **kwargs: object) -> tuple[SalesPlan, list]:
    stores = _stores(store_count(members))
    specs = member_specs(
        members, seed=seed, stores=stores, today=TODAY, n_groups=group_count(len(stores))
    )
    plan = plan_sales(
        specs,
        _products(),
        stores=stores,
        seed=seed,
        today=TODAY,
        member_day=lambda day: matches(LUNAR_MEMBER_DAYS, day),
        expiry_policy="year_end",
        **kwargs,  # type: ignore[arg-type]
    )
    return plan, specs


@pytest.fixture(scope="module")
def plan() -> SalesPlan:
    return _plan()[0]


def _per_day(plan: SalesPlan) -> Counter[dt.date]:
    counts = Counter(s.at.date() for s in plan.sales)
    day, end = plan.start, plan.end
    while day <= end:
        counts.setdefault(day, 0)
        day += dt.timedelta(days=1)
    return counts


def test_the_demo_command_offers_the_presets() -> None:
    assert list(PRESETS) == DEMO_PRESETS
    assert DEMO_PRESETS[0] == DEMO_PRESET == "wangqu"


def test_the_plan_is_deterministic_by_seed() -> None:
    a, _ = _plan(seed=5, members=600)
    b, _ = _plan(seed=5, members=600)
    c, _ = _plan(seed=6, members=600)
    assert a.sales == b.sales
    assert a.returns == b.returns
    assert a.refills == b.refills
    assert a.sales != c.sales


def test_sales_fall_in_the_window_and_after_enrolment() -> None:
    plan, specs = _plan(members=800)
    assert plan.start == window_start(TODAY) == dt.date(2025, 10, 31)
    assert plan.end == TODAY
    enrolled = {s.index: s.enrolled_at for s in specs}
    assert all(plan.start <= s.at.date() <= plan.end for s in plan.sales)
    assert all(s.at > enrolled[s.member] for s in plan.sales)
    assert [s.seq for s in plan.sales] == list(range(len(plan.sales)))
    assert [s.at for s in plan.sales] == sorted(s.at for s in plan.sales)
    # One receipt per member and day; whole lines, each SKU once.
    assert len({(s.member, s.at.date()) for s in plan.sales}) == len(plan.sales)
    assert all(len({sku for sku, _q in s.lines}) == len(s.lines) for s in plan.sales)
    assert all(q >= 1 for s in plan.sales for _sku, q in s.lines)
    # Members who joined during the year bought something when they joined.
    new = {i for i, at in enrolled.items() if at.date() >= plan.start}
    first = {}
    for s in plan.sales:
        first.setdefault(s.member, s)
    assert new
    assert all(first[i].kind == "enrol" for i in new)
    assert all(
        dt.timedelta(minutes=2) <= first[i].at - enrolled[i] <= dt.timedelta(minutes=15)
        for i in new
    )


def test_chronic_refills_follow_each_products_days_of_supply(plan: SalesPlan) -> None:
    products = {p.sku: p for p in _products()}
    bought = {(s.member, s.at.date(), sku): q for s in plan.sales for sku, q in s.lines}
    by_regimen = defaultdict(list)
    for refill in plan.refills:
        product = products[refill.sku]
        assert product.days_supply
        assert refill.supply == refill.quantity * product.days_supply
        assert bought[(refill.member, refill.day, refill.sku)] >= refill.quantity
        # A patient comes when the first of their medicines runs out, a little early or late,
        # or waits a few days for a member day or the weekend.
        assert -EARLY_TOP_UP <= (refill.day - refill.due).days <= MAX_LATE + DEAL_WAIT
        by_regimen[(refill.member, refill.regimen)].append(refill)
    assert len(by_regimen) > 300
    gaps = []
    for refills in by_regimen.values():
        for before, after in zip(refills, refills[1:], strict=False):
            # The next box is due when this one runs out (a box bought early is started when
            # the last one is finished); a cycle bought at the hospital adds a supply.
            start = max(before.due, before.day)
            assert after.due == start + dt.timedelta(days=after.supply * (1 + after.missed))
            gaps.append((after.day - before.day).days / before.supply)
    assert 0.8 < mean(gaps) < 1.3
    assert any(r.missed for r in plan.refills)
    # Hypertension drugs are the most refilled, as in any Chinese pharmacy.
    classes = Counter(products[r.sku].category for r in plan.refills)
    assert classes.most_common(1)[0][0] == "RX-CV"


def test_member_days_weekends_and_flu_season_are_busier(plan: SalesPlan) -> None:
    per_day = _per_day(plan)
    member_days = [n for d, n in per_day.items() if matches(LUNAR_MEMBER_DAYS, d)]
    others = [n for d, n in per_day.items() if not matches(LUNAR_MEMBER_DAYS, d)]
    assert mean(member_days) > 1.3 * mean(others)
    plain = [
        (d, n) for d, n in per_day.items() if not matches(LUNAR_MEMBER_DAYS, d)
    ]  # weekday effect without member days
    weekend = mean(n for d, n in plain if d.weekday() >= 5)
    midweek = mean(n for d, n in plain if d.weekday() <= 3)
    assert weekend > 1.1 * midweek
    flu = mean(n for d, n in per_day.items() if d.month in FLU_MONTHS)
    assert flu > 1.05 * mean(per_day.values())

    cold_skus = {
        p.sku for p in _products() if p.category in NEEDS["cold"][0] or p.name in NEEDS["cold"][1]
    }

    def cold_share(months: set[int]) -> float:
        lines = [sku for s in plan.sales if s.at.month in months for sku, _q in s.lines]
        return sum(sku in cold_skus for sku in lines) / len(lines)

    assert cold_share(set(FLU_MONTHS)) > 1.5 * cold_share({6, 7, 8})


def test_returns_are_about_one_percent_within_days(plan: SalesPlan) -> None:
    assert 0.006 < len(plan.returns) / len(plan.sales) < 0.02
    sales = {s.seq: s for s in plan.sales}
    partial = 0
    for r in plan.returns:
        sale = sales[r.sale]
        assert r.member == sale.member
        assert dt.timedelta(hours=12) < r.at - sale.at < dt.timedelta(days=7, hours=4)
        assert r.at.date() <= plan.end
        assert 8 <= r.at.hour <= 21
        for line_no, qty in r.lines:
            assert 1 <= qty <= sale.lines[line_no - 1][1]
        partial += sum(q for _n, q in r.lines) < sum(q for _s, q in sale.lines)
    assert 0 < partial < len(plan.returns)
    assert len({r.sale for r in plan.returns}) == len(plan.returns)


def test_tenders_mix_insurance_and_self_pay(plan: SalesPlan) -> None:
    pays = Counter(s.pay for s in plan.sales)
    assert set(pays) == {"cash", "wechat", "alipay", "bank_card"}
    insurance = Counter(s.insurance for s in plan.sales)
    assert insurance["personal"] > insurance["pool"] > 0
    assert insurance[""] > 0


def test_events_keep_every_members_ledger_in_time_order(plan: SalesPlan) -> None:
    events = plan.events()
    assert len(events) == len(plan.sales) + len(plan.returns) + len(plan.expiries)
    assert [e.day for e in plan.expiries] == [dt.date(2026, 1, 1)]
    last: dict[int, dt.datetime] = {}
    seen_sales: set[int] = set()
    expiry_at = plan.expiries[0].at
    expired = False
    for event in events:
        if isinstance(event, PlannedExpiry):
            expired = True
            continue
        assert (event.at >= expiry_at) == expired  # nothing crosses the expiry run
        assert event.at >= last.get(event.member, event.at)
        last[event.member] = event.at
        if isinstance(event, PlannedSale):
            seen_sales.add(event.seq)
        else:
            assert isinstance(event, PlannedReturn)
            assert event.sale in seen_sales
    # Returns wait for the end of the week (or the member's next visit): fewer stops.
    runs = sum(
        1
        for a, b in zip(events, events[1:], strict=False)
        if isinstance(b, PlannedReturn) and not isinstance(a, PlannedReturn)
    )
    assert runs < len(plan.returns)


def test_a_share_of_members_keep_stored_value_older_chronic_patients_more() -> None:
    plan, specs = _plan(members=3000)
    holders = {s.member for s in plan.sales if s.topup > 0}
    assert 0.05 < len(holders) / len(specs) < 0.08
    assert abs(len(holders) / len(specs) - WALLET_SHARE) < 0.012
    chronic = {r.member for r in plan.refills}
    buyers = {s.member for s in plan.sales}
    assert len(holders & chronic) / len(chronic) > 2 * len(holders - chronic) / len(
        buyers - chronic
    )
    amounts = Counter({s.member: s.topup for s in plan.sales if s.topup > 0}.values())
    assert set(amounts) <= {Decimal(a) for a in (200, 300, 500, 1000, 2000)}
    assert amounts.most_common(1)[0][0] == Decimal(500)
    for member in holders:
        sales = [s for s in plan.sales if s.member == member]
        first = next(i for i, s in enumerate(sales) if s.topup > 0)
        # From their first top-up on they keep their usual amount and mostly pay from it.
        assert sales[first].wallet
        assert all(s.topup == sales[first].topup for s in sales[first:])
        assert not any(s.wallet or s.topup for s in sales[:first])


def test_points_are_redeemed_most_before_the_year_end_clearing() -> None:
    plan, _specs = _plan(members=1500)
    by_month = Counter(s.at.month for s in plan.sales)
    wishes = Counter()
    for s in plan.sales:
        wishes[s.at.month] += s.redeem
    assert wishes[12] / by_month[12] > 2.5 * wishes[6] / by_month[6] > 0
    assert any(s.voucher for s in plan.sales)
    # A redemption or top-up comes before its sale, never before a return just made.
    returns = defaultdict(list)
    for r in plan.returns:
        returns[r.member].append(r.at)
    for s in plan.sales:
        assert 0 <= s.lead <= 120
        assert not any(s.redeem_at < at <= s.at for at in returns[s.member])


def test_what_the_counter_makes_of_the_plan() -> None:
    from carecard.demo.sales import RewardInfo, VoucherInfo

    rewards = [RewardInfo(1, "500换10", 500, 7), RewardInfo(2, "1000换20", 1000, 8)]
    assert redemption_for(rewards, 499, 3) == (None, 0)
    assert redemption_for(rewards, 2600, 3) == (rewards[1], 2)
    assert redemption_for(rewards, 800, 3) == (rewards[0], 1)
    assert redemption_for(rewards, 5000, 0) == (None, 0)
    day = dt.date(2026, 3, 1)
    at = dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC)
    held = [
        VoucherInfo(3, "B", 8, day, dt.date(2026, 4, 1), at),
        VoucherInfo(4, "A", 7, day, dt.date(2026, 5, 1), at),
        VoucherInfo(5, "C", 7, day, dt.date(2026, 3, 31), at),
    ]
    values = {7: Decimal("10.00"), 8: Decimal("20.00")}
    assert voucher_for(held, values, Decimal("50.00"), day).code == "C"  # first to expire
    assert voucher_for(held, values, Decimal("15.00"), day).code == "C"
    assert voucher_for(held, values, Decimal("10.00"), day) is None  # worth the whole basket
    assert voucher_for(held, values, Decimal("50.00"), dt.date(2026, 4, 2)).code == "A"
    tiers = [
        BonusTier(Decimal("500.00"), Decimal("20.00")),
        BonusTier(Decimal("1000.00"), Decimal("50.00")),
    ]
    d = Decimal
    assert topup_for(d("500.00"), balance=d("0"), need=d("80"), room=d("5000"), tiers=tiers) == d(
        "500.00"
    )
    assert topup_for(d("500.00"), balance=d("90"), need=d("80"), room=d("4910"), tiers=tiers) == 0
    # An unregistered card holds 1 000 CNY, bonus included: 1 000 becomes 900.
    assert topup_for(d("1000.00"), balance=d("0"), need=d("80"), room=d("1000"), tiers=tiers) == d(
        "900.00"
    )
    assert topup_for(d("500.00"), balance=d("950"), need=d("80"), room=d("50"), tiers=tiers) == 0


# --- bulk and service writers give the same rows ------------------------------------------------


def _flush() -> None:
    call_command("flush", interactive=False, verbosity=0)


def _generate(writer: str, preset: str) -> dict:
    _flush()
    stats = generate_demo(
        members=250,
        seed=8,
        password=PASSWORD,
        today=dt.date(2026, 2, 20),  # November to February: year-end expiry and flu season
        writer=writer,
        preset=preset,
        sales_months=4,
        return_rate=0.08,
        progress=None,
        wallet_share=0.25,  # enough top-ups, stored-value payments and their returns
        redeem_share=0.9,
    )
    assert verify_points() == []
    assert verify_wallets() == []
    last: dict[int, dt.datetime] = {}
    for member_id, at in PointsEntry.objects.order_by("pk").values_list("member_id", "at"):
        assert at >= last.get(member_id, at)  # every ledger in time order
        last[member_id] = at
    return {"stats": stats, "rows": sales_rows()}


def _compare(bulk: dict, service: dict) -> None:
    assert bulk["stats"] == {**service["stats"], "seconds": bulk["stats"]["seconds"]}
    assert bulk["rows"].keys() == service["rows"].keys()
    for table, rows in service["rows"].items():
        assert bulk["rows"][table] == rows, table


@pytest.mark.django_db(transaction=True)
def test_bulk_sales_write_what_the_counter_writes_under_wangqu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lower yearly-spend threshold, so that the free health-check voucher is issued.
    wangqu = PRESETS["wangqu"]
    monkeypatch.setitem(
        PRESETS,
        "wangqu",
        replace(
            wangqu,
            spend_benefits=[
                (name, "600.00", voucher) for name, _t, voucher in wangqu.spend_benefits
            ],
        ),
    )
    # Every sale the bulk writer can take from the pricing-ahead guesses takes it.
    monkeypatch.setattr(demo_sales, "SPECULATE", "inline")
    used = []
    close = demo_sales.BulkSalesWriter.close

    def record(writer: demo_sales.BulkSalesWriter) -> None:
        used.append(writer.ahead_used)
        close(writer)

    monkeypatch.setattr(demo_sales.BulkSalesWriter, "close", record)
    service = _generate("service", "wangqu")
    bulk = _generate("bulk", "wangqu")
    _compare(bulk, service)
    assert used[-1] > bulk["stats"]["sales"] // 2
    rows = bulk["rows"]
    kinds = Counter(e[1] for e in rows["entries"])
    assert kinds[EntryKind.EARN] > 20
    assert kinds[EntryKind.EXPIRE] > 5  # 31 December
    assert kinds[EntryKind.REVERSE] > 0  # returns
    assert bulk["stats"]["returns"] > 5
    assert bulk["stats"]["points_expired"] > 0
    # Members who joined in these months became members with their first purchase ≥ 20 CNY.
    assert Member.objects.filter(
        enrolled_at__date__gte=dt.date(2025, 10, 21), status=MemberStatus.ACTIVE
    ).exists()
    assert Member.objects.filter(status=MemberStatus.PENDING).exists()
    assert Coupon.objects.filter(source_reference__startswith="spend_benefit:").exists()
    kinds = Counter(t[2] for t in rows["tenders"])
    assert kinds["insurance_personal"]
    assert kinds["insurance_pool"]
    assert kinds["wechat"]
    assert Sale.objects.filter(kind="return").count() == bulk["stats"]["returns"]
    assert SaleLine.objects.filter(returns_line__isnull=False).exists()
    # Redemptions, vouchers used at the till, top-ups with their bonus, stored-value payments,
    # and returns that gave back a voucher and stored value: all as the services write them.
    stats = bulk["stats"]
    assert stats["redemptions"] == len(rows["redemptions"]) > 2
    assert 0 < stats["coupon_uses"] <= stats["redemptions"]
    assert stats["topups"] > 20
    assert stats["stored_value_payments"] > stats["topups"]
    wallet = Counter(w[1] for w in rows["wallet_entries"])
    assert wallet["topup"] == stats["topups"]
    assert wallet["pay"] == stats["stored_value_payments"]
    assert wallet["bonus"] > 0
    assert wallet["pay_reversal"] > 0
    events = Counter(e[2] for e in rows["coupon_events"])
    assert events["redeemed"] == stats["coupon_uses"]
    assert events["restored"] > 0
    assert kinds["stored_value"] > 0
    assert any(d[4].startswith(d[1]) for d in rows["discounts"] if d[4])  # the member's voucher
    # S-2: a top-up that would take a card over its limit is made smaller, and a card without
    # an ID number never holds more than 1 000 CNY after a top-up.
    usual = [Decimal(a) for a in (200, 300, 500, 1000, 2000)]
    assert WalletEntry.objects.filter(kind="topup").exclude(amount__in=usual).exists()
    unnamed = Member.objects.filter(id_number="").values_list("pk", flat=True)
    assert unnamed
    assert not WalletEntry.objects.filter(
        member_id__in=list(unnamed), kind__in=["topup", "bonus"], balance_after__gt=1000
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_bulk_sales_write_what_the_counter_writes_under_four_tiers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Thresholds a few months of sales reach, so that members move up and redeem.
    four = PRESETS["four_tier"]
    tiers = [{**t, "threshold": t["threshold"] / 100} for t in four.tiers]
    rewards = [(name, points // 10, value) for name, points, value in four.rewards]
    monkeypatch.setitem(PRESETS, "four_tier", replace(four, tiers=tiers, rewards=rewards))
    service = _generate("service", "four_tier")
    bulk = _generate("bulk", "four_tier")
    _compare(bulk, service)
    discounts = Counter(d[2] for d in bulk["rows"]["discounts"])
    assert discounts["member_day"]
    assert discounts["tier"]
    assert discounts["birthday"]
    assert TierChange.objects.filter(from_tier__isnull=False).exists()
    assert not Member.objects.filter(status=MemberStatus.PENDING).exists()
    assert bulk["stats"]["points_expired"] == 0
    # The dearest reward the points pay for.
    assert len({r[1] for r in bulk["rows"]["redemptions"]}) > 1
    assert bulk["stats"]["coupon_uses"] > 0


@pytest.mark.django_db(transaction=True)
def test_the_default_demo_has_a_year_of_sales() -> None:
    _flush()
    stats = generate_demo(members=300, seed=3, password=PASSWORD, today=TODAY, progress=None)
    assert stats["preset"] == "wangqu"
    assert stats["sales"] == Sale.objects.filter(kind="sale").count() > 300
    assert stats["returns"] == Sale.objects.filter(kind="return").count() > 0
    first, last = (
        Sale.objects.order_by("at").first(),
        Sale.objects.order_by("at").last(),
    )
    assert first.business_date >= window_start(TODAY)
    assert last.business_date <= TODAY
    assert verify_points() == []
    assert PointsEntry.objects.filter(kind=EntryKind.EXPIRE, at__date=dt.date(2026, 1, 1)).exists()
    assert Sale.objects.filter(net_total__gt=Decimal("0")).exists()
    # Points turned into vouchers and used; stored value topped up with the demo's bonus tiers
    # and spent; both ledgers balance.
    assert stats["redemptions"] == RewardRedemption.objects.count() > 0
    assert stats["coupon_uses"] > 0
    assert stats["topups"] == WalletEntry.objects.filter(kind="topup").count() > 0
    assert stats["stored_value_payments"] == WalletEntry.objects.filter(kind="pay").count() > 0
    assert TopupRule.objects.count() == 3
    assert WalletEntry.objects.filter(kind="bonus").exists()
    assert 0.03 < WalletAccount.objects.count() / 300 < 0.1
    assert verify_wallets() == []
    # The same seed gives the same year, extras included (coupon codes are drawn at random,
    # like the counter's; rows are compared by what they stand for).
    first = sales_fingerprint()
    _flush()
    again = generate_demo(members=300, seed=3, password=PASSWORD, today=TODAY, progress=None)
    assert {**again, "seconds": 0} == {**stats, "seconds": 0}
    assert sales_fingerprint() == first
    _flush()

"""The pricing engine: member discounts, stacking, coupons, rounding, invariants. Pure."""

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carecard.checkout.engine import (
    DEFAULT_POLICY,
    GIFT_INCENTIVE_LEGAL_BASIS,
    NO_GIFT_SCOPE,
    Coupon,
    DiscountRule,
    Item,
    Line,
    PricedBasket,
    PricingError,
    PricingPolicy,
    gift_incentive_allowed,
    price_basket,
)
from carecard.core.calendar import lunar_to_solar, solar_to_lunar
from carecard.core.money import is_money
from carecard.loyalty.rules import BirthdayInfo, Member, Schedule, Scope, matches

MONDAY = dt.date(2026, 3, 2)
SUNDAY = dt.date(2026, 3, 1)


def item(sku="A", price="100.00", **kw) -> Item:
    return Item(sku=sku, name=kw.pop("name", f"商品{sku}"), shelf_price=D(price), **kw)


def price(lines, member=None, rules=(), coupons=(), policy=DEFAULT_POLICY, day=MONDAY):
    return price_basket(lines, member, rules, coupons, policy, day)


def assert_invariants(basket: PricedBasket) -> None:
    for line in basket.lines:
        assert line.net >= 0
        assert is_money(line.net)
        assert all(d.amount >= 0 and is_money(d.amount) for d in line.discounts)
        assert line.discount_total + line.net == line.original
        assert line.original == line.item.shelf_price * line.quantity
    assert sum(line.net for line in basket.lines) == basket.net
    assert sum(line.original for line in basket.lines) == basket.original
    assert basket.discount_total + basket.net == basket.original
    coupon_rows = sum(line.coupon_discount for line in basket.lines)
    assert coupon_rows == sum(c.amount for c in basket.coupons_applied)


def only_discount(line):
    assert len(line.discounts) == 1, line.discounts
    return line.discounts[0]


# --------------------------------------------------------------------------- 王曲同心

# 1 point per CNY; 特价/限量/促销 get no member discount and no points; lunar 初八/十八/廿八 are
# member days at 9.5折, other days 9.8折.
WANGQU_RULES = (
    DiscountRule(id="wq-base", name="会员折扣", kind="base", rate=D("0.98")),
    DiscountRule(
        id="wq-day",
        name="会员日",
        kind="member_day",
        rate=D("0.95"),
        schedule=Schedule("lunar_days", (8, 18, 28)),
    ),
)
WANGQU_BASKET = (
    Line(item("N1", "100.00", item_class="otc_b", name="复方感冒灵"), 1),
    Line(item("S1", "50.00", is_special_price=True, name="特价维C"), 1),
    Line(item("L1", "30.00", is_limited=True, name="限量口罩"), 1),
    Line(item("P1", "20.00", is_promotional=True, name="促销棉签"), 1),
)


def test_wangqu_member_day_on_a_known_lunar_eighth():
    day = dt.date(2026, 2, 24)  # 正月初八
    assert solar_to_lunar(day) == (2026, 1, 8, False)
    basket = price(WANGQU_BASKET, Member(), WANGQU_RULES, day=day)
    normal, *flagged = basket.lines
    row = only_discount(normal)
    assert (row.kind, row.rule_id, row.amount, row.reason) == (
        "member_day",
        "wq-day",
        D("5.00"),
        "会员日 9.5折",
    )
    assert normal.net == D("95.00")
    assert all(line.discounts == () and line.net == line.original for line in flagged)
    assert basket.net == D("195.00")
    assert_invariants(basket)


def test_wangqu_member_days_computed_with_the_lunar_calendar():
    member_days = [lunar_to_solar(2026, month, d) for month in (3, 9) for d in (8, 18, 28)]
    for day in member_days:
        basket = price(WANGQU_BASKET[:1], Member(), WANGQU_RULES, day=day)
        assert only_discount(basket.lines[0]).reason == "会员日 9.5折"
        assert basket.net == D("95.00")
    other_day = member_days[0] + dt.timedelta(days=1)
    basket = price(WANGQU_BASKET[:1], Member(), WANGQU_RULES, day=other_day)
    row = only_discount(basket.lines[0])
    assert (row.kind, row.amount, row.reason) == ("base", D("2.00"), "会员折扣 9.8折")


def test_walk_in_gets_no_member_discount():
    basket = price(WANGQU_BASKET, None, WANGQU_RULES, day=dt.date(2026, 2, 24))
    assert basket.net == basket.original == D("200.00")
    assert not basket.member_priced
    frozen_card = price(WANGQU_BASKET, Member(is_member=False), WANGQU_RULES)
    assert frozen_card.discount_total == 0


# --------------------------------------------------------------------------- four-tier chain

TIER_RULES = (
    DiscountRule(
        id="sun",
        name="周日会员日",
        kind="member_day",
        rate=D("0.85"),
        schedule=Schedule("weekdays", (6,)),
    ),
    DiscountRule(
        id="bday", name="生日", kind="birthday", rate=D("0.80"), schedule=Schedule("birthday_day")
    ),
    DiscountRule(id="t-s", name="银卡", kind="tier", rate=D("0.88"), tiers={"silver"}),
    DiscountRule(id="t-g", name="金卡", kind="tier", rate=D("0.85"), tiers={"gold"}),
    DiscountRule(id="t-p", name="白金卡", kind="tier", rate=D("0.80"), tiers={"platinum"}),
    DiscountRule(id="t-d", name="钻石卡", kind="tier", rate=D("0.75"), tiers={"diamond"}),
)
BIRTHDAY = BirthdayInfo.from_solar_date(dt.date(1975, 3, 4))


@pytest.mark.parametrize(
    ("tier", "day", "birthday", "expected_rule", "amount"),
    [
        ("silver", MONDAY, None, "t-s", "12.00"),
        ("gold", MONDAY, None, "t-g", "15.00"),
        ("platinum", MONDAY, None, "t-p", "20.00"),
        ("diamond", MONDAY, None, "t-d", "25.00"),
        ("silver", SUNDAY, None, "sun", "15.00"),
        # equal offers: the member day wins the tie (kind order), the amount is the same
        ("gold", SUNDAY, None, "sun", "15.00"),
        ("diamond", SUNDAY, None, "t-d", "25.00"),
        ("silver", dt.date(2026, 3, 4), BIRTHDAY, "bday", "20.00"),
        ("diamond", dt.date(2026, 3, 4), BIRTHDAY, "t-d", "25.00"),
        (None, SUNDAY, None, "sun", "15.00"),
        (None, MONDAY, None, None, "0.00"),
    ],
)
def test_four_tier_chain_best_single(tier, day, birthday, expected_rule, amount):
    basket = price([Line(item(), 1)], Member(tier=tier, birthday=birthday), TIER_RULES, day=day)
    line = basket.lines[0]
    assert line.member_discount == D(amount)
    assert [d.rule_id for d in line.discounts] == ([expected_rule] if expected_rule else [])
    assert_invariants(basket)


def test_four_tier_chain_sunday_skips_special_items():
    special = item("S", "100.00", is_special_price=True)
    basket = price([Line(special, 1)], Member(tier="diamond"), TIER_RULES, day=SUNDAY)
    assert basket.lines[0].discounts == ()


def test_lunar_birthday_discount():
    bday = BirthdayInfo.from_lunar(1, 8)
    member = Member(tier="silver", birthday=bday)
    basket = price([Line(item(), 1)], member, TIER_RULES, day=dt.date(2026, 2, 24))
    assert only_discount(basket.lines[0]).reason == "生日 8折"


def test_multiply_policy_combines_tier_and_member_day():
    policy = PricingPolicy(stacking="multiply")
    basket = price([Line(item(), 1)], Member(tier="gold"), TIER_RULES, policy=policy, day=SUNDAY)
    line = basket.lines[0]
    # 0.85 × 0.85 = 0.7225 → 27.75 off, attributed in kind order and summing exactly
    assert [(d.rule_id, d.amount, d.reason) for d in line.discounts] == [
        ("sun", D("15.00"), "周日会员日 8.5折"),
        ("t-g", D("12.75"), "金卡 8.5折"),
    ]
    assert line.net == D("72.25")
    assert_invariants(basket)


def test_multiply_rounds_the_compound_rate_once():
    policy = PricingPolicy(stacking="multiply")
    rules = (
        DiscountRule(id="d", kind="member_day", rate=D("0.95")),
        DiscountRule(id="t", kind="tier", rate=D("0.88"), tiers={"silver"}),
    )
    basket = price([Line(item("A", "0.99"), 3)], Member(tier="silver"), rules, policy=policy)
    line = basket.lines[0]
    # 2.97 × (1 − 0.836) = 0.48708 → 0.49; member day alone 0.1485 → 0.15; tier the rest 0.34
    assert [d.amount for d in line.discounts] == [D("0.15"), D("0.34")]
    assert line.net == D("2.48")


def test_multiply_keeps_the_best_rate_per_kind_and_competes_with_member_price():
    policy = PricingPolicy(stacking="multiply")
    rules = (
        DiscountRule(id="mp", kind="member_price"),
        DiscountRule(id="d1", kind="member_day", rate=D("0.95")),
        DiscountRule(id="d2", kind="member_day", rate=D("0.90")),
        DiscountRule(id="t", kind="tier", rate=D("0.90"), tiers={"gold"}),
    )
    cheap_member_price = item("A", "100.00", member_price=D("70.00"))
    basket = price([Line(cheap_member_price, 1)], Member(tier="gold"), rules, policy=policy)
    assert [d.rule_id for d in basket.lines[0].discounts] == ["mp"]
    normal = item("B", "100.00", member_price=D("95.00"))
    basket = price([Line(normal, 1)], Member(tier="gold"), rules, policy=policy)
    assert [(d.rule_id, d.amount) for d in basket.lines[0].discounts] == [
        ("d2", D("10.00")),
        ("t", D("9.00")),
    ]


# --------------------------------------------------------------------------- member price


def test_member_price_competes_with_rate_rules():
    rules = (
        DiscountRule(id="mp", kind="member_price"),
        DiscountRule(id="base", kind="base", rate=D("0.98")),
        DiscountRule(id="day", name="会员日", kind="member_day", rate=D("0.95")),
    )
    good_price = item("A", "30.00", member_price=D("27.00"))
    basket = price([Line(good_price, 2)], Member(), rules)
    row = only_discount(basket.lines[0])
    assert (row.kind, row.amount, row.reason) == ("member_price", D("6.00"), "会员价 ¥27.00")
    weak_price = item("B", "100.00", member_price=D("99.00"))
    basket = price([Line(weak_price, 1)], Member(), rules)
    assert only_discount(basket.lines[0]).reason == "会员日 9.5折"


def test_member_price_needs_a_member_price_rule_and_a_lower_price():
    basket = price([Line(item("A", "30.00", member_price=D("27.00")), 1)], Member(), ())
    assert basket.lines[0].discounts == ()
    higher = item("B", "30.00", member_price=D("31.00"))
    basket = price([Line(higher, 1)], Member(), (DiscountRule(id="mp", kind="member_price"),))
    assert basket.lines[0].discounts == ()


def test_flagged_item_discount_only_when_the_rule_allows():
    special = item("S", "10.00", is_special_price=True)
    rule = DiscountRule(id="r", kind="base", rate=D("0.90"), applies_to_flagged=True)
    basket = price([Line(special, 1)], Member(), (rule,))
    assert basket.lines[0].net == D("9.00")


# --------------------------------------------------------------------------- rounding


def test_line_discount_is_rounded_once_half_up_on_the_line_total():
    rule = DiscountRule(id="r", kind="base", rate=D("0.95"))
    basket = price([Line(item("A", "9.99"), 3)], Member(), (rule,))
    # 29.97 × 0.05 = 1.4985 → 1.50 (per unit 0.4995 → 0.50 would give the same here)
    assert basket.lines[0].discounts[0].amount == D("1.50")
    assert basket.lines[0].net == D("28.47")
    tiny = price([Line(item("B", "0.10"), 1)], Member(), (rule,))
    assert tiny.lines[0].discounts[0].amount == D("0.01")  # 0.005 rounds up
    per_unit = price([Line(item("C", "0.30"), 3)], Member(), (rule,))
    # 0.90 × 0.05 = 0.045 → 0.05 on the line; rounding per unit would have given 0.06
    assert per_unit.lines[0].discounts[0].amount == D("0.05")


# --------------------------------------------------------------------------- coupons


def amount_off(code="C1", value="10.00", min_spend="0", **kw) -> Coupon:
    return Coupon(code=code, kind="amount_off", value=D(value), min_spend=D(min_spend), **kw)


def test_coupon_min_spend_counts_the_discounted_amount():
    rule = DiscountRule(id="r", kind="base", rate=D("0.95"))
    basket = price([Line(item(), 1)], Member(), (rule,), (amount_off(min_spend="100"),))
    assert basket.coupons_applied == ()
    [rejected] = basket.coupons_rejected
    assert rejected.reason_code == "min_spend_not_met"
    assert rejected.message == "未满足使用门槛：适用商品金额 ¥95.00，需满 ¥100.00"
    ok = price([Line(item(), 1)], Member(), (rule,), (amount_off(min_spend="95"),))
    assert ok.net == D("85.00")
    assert ok.lines[0].discounts[-1].reason == "优惠券「C1」满95减10"


def test_coupon_is_allocated_by_net_in_whole_cents():
    lines = [Line(item("A", "10.00"), 1), Line(item("B", "20.00"), 1), Line(item("C", "30.00"), 1)]
    basket = price(lines, Member(), (), (amount_off(),))
    assert [line.coupon_discount for line in basket.lines] == [D("1.67"), D("3.33"), D("5.00")]
    assert basket.net == D("50.00")
    assert_invariants(basket)


def test_amount_off_larger_than_the_eligible_net_is_capped():
    basket = price([Line(item("A", "30.00"), 1)], Member(), (), (amount_off(value="50"),))
    [applied] = basket.coupons_applied
    assert (applied.amount, applied.face_amount, applied.capped) == (D("30.00"), D("50.00"), True)
    assert basket.net == D("0.00")
    assert basket.lines[0].discounts[0].reason == "优惠券「C1」减50元（最多抵扣 ¥30.00）"


def test_percent_off_applies_after_member_discounts():
    rule = DiscountRule(id="r", kind="base", rate=D("0.95"))
    coupon = Coupon(code="P9", name="九折券", kind="percent_off", rate=D("0.90"))
    basket = price([Line(item(), 1)], Member(), (rule,), (coupon,))
    assert [d.amount for d in basket.lines[0].discounts] == [D("5.00"), D("9.50")]
    assert basket.net == D("85.50")
    assert basket.lines[0].discounts[1].reason == "优惠券「九折券」9折"
    capped = Coupon(code="P8", kind="percent_off", rate=D("0.80"), max_off=D("5"))
    basket = price([Line(item(), 1)], Member(), (), (capped,))
    assert basket.net == D("95.00")


def test_one_coupon_per_stacking_group():
    coupons = (
        amount_off("A1", "5", stacking_group="cash"),
        amount_off("A2", "5", stacking_group="cash"),
        amount_off("B1", "3", stacking_group="category"),
        amount_off("A1", "5", stacking_group="other"),
    )
    basket = price([Line(item(), 1)], Member(), (), coupons)
    assert [c.code for c in basket.coupons_applied] == ["A1", "B1"]
    assert [(r.code, r.reason_code) for r in basket.coupons_rejected] == [
        ("A2", "stacking_conflict"),
        ("A1", "duplicate_code"),
    ]
    assert basket.net == D("92.00")
    single = price(
        [Line(item(), 1)], Member(), (), coupons, PricingPolicy(coupon_stacking="single")
    )
    assert [c.code for c in single.coupons_applied] == ["A1"]


def test_coupon_scope_and_flagged_items():
    rx = item("RX", "50.00", item_class="rx", category_ids=(11, 1))
    special = item("S", "50.00", item_class="otc_b", category_ids=(12, 1), is_special_price=True)
    lines = [Line(rx, 1), Line(special, 1)]
    cardio = amount_off("K1", "10", scope=Scope(categories={11}))
    basket = price(lines, Member(), (), (cardio,))
    assert basket.lines[0].coupon_discount == D("10.00")
    # special-price items are outside coupons by default …
    whole_basket = amount_off("W1", "10")
    basket = price(lines, Member(), (), (whole_basket,))
    assert [line.coupon_discount for line in basket.lines] == [D("10.00"), D("0.00")]
    # … unless the policy or the coupon allows them
    basket = price(lines, Member(), (), (whole_basket,), PricingPolicy(coupons_on_flagged=True))
    assert [line.coupon_discount for line in basket.lines] == [D("5.00"), D("5.00")]
    only_special = amount_off("S1", "10", scope=Scope(tags={"special_price"}))
    basket = price(lines, Member(), (), (only_special,))
    assert basket.coupons_rejected[0].reason_code == "not_applicable"
    allowed = amount_off("S2", "10", scope=Scope(tags={"special_price"}), applies_to_flagged=True)
    assert price(lines, Member(), (), (allowed,)).lines[1].coupon_discount == D("10.00")


def test_coupons_for_walk_ins():
    members_only = amount_off("M1")
    printed = amount_off("P1", stacking_group="printed", members_only=False)
    basket = price([Line(item(), 1)], None, (), (members_only, printed))
    assert [c.code for c in basket.coupons_applied] == ["P1"]
    assert basket.coupons_rejected[0].reason_code == "member_required"
    assert basket.coupons_rejected[0].message == "该券仅限会员使用"


def test_nothing_left_to_discount():
    coupons = (amount_off("A", "200"), amount_off("B", "5", stacking_group="x"))
    basket = price([Line(item(), 1)], Member(), (), coupons)
    assert basket.net == D("0.00")
    assert basket.coupons_rejected[0].reason_code == "nothing_to_discount"


def test_discount_rows_carry_funding_and_points_funded_flag():
    rule = DiscountRule(id="r", kind="base", rate=D("0.90"), funded_by="vendor")
    coupon = amount_off("PT", "10", points_funded=True, funded_by="hq", template_id=7)
    basket = price([Line(item(), 1)], Member(), (rule,), (coupon,))
    assert basket.discounts_by_funder() == {"vendor": D("10.00"), "hq": D("10.00")}
    coupon_row = basket.lines[0].discounts[1]
    assert coupon_row.points_funded
    assert coupon_row.coupon_template_id == 7
    assert basket.lines[0].points_funded_discount == D("10.00")
    assert basket.member_discount_total == D("10.00")
    assert basket.coupon_discount_total == D("10.00")


# --------------------------------------------------------------------------- legal rules


def test_gift_incentives_are_not_allowed_on_rx_and_class_a_otc():
    assert not gift_incentive_allowed(item(item_class="rx"))
    assert not gift_incentive_allowed(item(item_class="otc_a"))
    assert gift_incentive_allowed(item(item_class="otc_b"))
    assert gift_incentive_allowed(item(item_class="health_food"))


def test_a_legal_rule_is_data_with_its_basis_and_dates():
    rule = DiscountRule(
        id="legal",
        name="买赠活动",
        kind="member_day",
        rate=D("0.90"),
        scope=NO_GIFT_SCOPE,
        schedule=Schedule(effective_from=dt.date(2026, 1, 1), effective_to=dt.date(2026, 12, 31)),
        legal_basis=GIFT_INCENTIVE_LEGAL_BASIS,
    )
    lines = [Line(item("RX", item_class="rx"), 1), Line(item("OTC", item_class="otc_b"), 1)]
    basket = price(lines, Member(), (rule,))
    assert basket.lines[0].discounts == ()
    assert basket.lines[1].discounts[0].legal_basis.startswith("《药品流通监督管理办法》")
    assert price(lines, Member(), (rule,), day=dt.date(2027, 1, 1)).discount_total == 0


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "code", "field"),
    [
        (lambda: Line(item(), 0), "invalid_quantity", "quantity"),
        (lambda: Line(item(), True), "invalid_quantity", "quantity"),
        (lambda: item(price="1.005"), "invalid_amount", "shelf_price"),
        (lambda: item(price="-1"), "invalid_amount", "shelf_price"),
        (lambda: Item(sku="A", name="x", shelf_price=1.5), "invalid_amount", "shelf_price"),
        (lambda: item(member_price=D("-1")), "invalid_amount", "member_price"),
        (lambda: item(item_class="drugs"), "invalid_item_class", "item_class"),
        (lambda: DiscountRule(id=1, kind="base", rate=D("1.2")), "invalid_rate", "rate"),
        (lambda: DiscountRule(id=1, kind="base"), "invalid_rate", "rate"),
        (lambda: DiscountRule(id=1, kind="tier", rate=D("0.9")), "invalid_rule", "tiers"),
        (lambda: DiscountRule(id=1, kind="birthday", rate=D("0.8")), "invalid_rule", "schedule"),
        (lambda: DiscountRule(id=1, kind="member_price", rate=D("0.9")), "invalid_rule", "rate"),
        (lambda: DiscountRule(id=1, kind="gift", rate=D("0.9")), "invalid_rule", "kind"),
        (lambda: amount_off(value="0"), "invalid_amount", "value"),
        (lambda: Coupon(code="", kind="amount_off", value=D(1)), "invalid_coupon", "code"),
        (lambda: Coupon(code="P", kind="percent_off", rate=D(1)), "invalid_rate", "rate"),
        (lambda: PricingPolicy(stacking="all"), "invalid_policy", "stacking"),
        (
            lambda: PricingPolicy(multiply_kinds={"member_price"}),
            "invalid_policy",
            "multiply_kinds",
        ),
        (lambda: price([]), "empty_basket", "lines"),
    ],
)
def test_bad_input_raises_a_typed_error(build, code, field):
    with pytest.raises(PricingError) as exc:
        build()
    assert (exc.value.code, exc.value.field) == (code, field)
    assert exc.value.as_dict()["errors"][0]["field"] == field


# --------------------------------------------------------------------------- properties

money = st.integers(min_value=0, max_value=50_000).map(lambda c: D(c).scaleb(-2))
rates = st.integers(min_value=0, max_value=100).map(lambda r: D(r).scaleb(-2))
classes = st.sampled_from(["rx", "otc_a", "otc_b", "tcm", "health_food", "device", "other"])
tiers = st.sampled_from(["silver", "gold", "platinum", "diamond"])
scopes = st.one_of(
    st.just(Scope()),
    st.builds(Scope, classes=st.frozensets(classes, max_size=2)),
    st.builds(Scope, exclude_classes=st.frozensets(classes, max_size=2)),
    st.builds(Scope, categories=st.frozensets(st.integers(1, 4), max_size=2)),
)
items = st.builds(
    Item,
    sku=st.sampled_from(["A", "B", "C", "D", "E"]),
    name=st.just("商品"),
    item_class=classes,
    category_ids=st.lists(st.integers(1, 4), max_size=2, unique=True).map(tuple),
    shelf_price=money,
    member_price=st.none() | money,
    is_special_price=st.booleans(),
    is_limited=st.booleans(),
    is_insurance_listed=st.booleans(),
)
lines_st = st.lists(st.builds(Line, items, st.integers(1, 12)), min_size=1, max_size=6)


@st.composite
def rules_st(draw):
    kind = draw(st.sampled_from(["member_price", "base", "member_day", "birthday", "tier"]))
    schedule = {
        "birthday": Schedule("birthday_month"),
        "member_day": draw(st.sampled_from([Schedule(), Schedule("weekdays", (6,))])),
    }.get(kind, Schedule())
    return DiscountRule(
        id=draw(st.integers(1, 99)),
        kind=kind,
        rate=None if kind == "member_price" else draw(rates),
        schedule=schedule,
        tiers=draw(st.frozensets(tiers, min_size=1 if kind == "tier" else 0, max_size=2)),
        scope=draw(scopes),
        applies_to_flagged=draw(st.booleans()),
    )


@st.composite
def coupons_st(draw):
    code = draw(st.sampled_from(["C1", "C2", "C3", "C4"]))
    common = {
        "code": code,
        "min_spend": draw(st.sampled_from([D(0), D(50), D(300)])),
        "scope": draw(scopes),
        "stacking_group": draw(st.sampled_from(["a", "b", "c"])),
        "members_only": draw(st.booleans()),
        "applies_to_flagged": draw(st.sampled_from([None, True, False])),
        "points_funded": draw(st.booleans()),
    }
    if draw(st.booleans()):
        value = draw(st.integers(1, 30_000).map(lambda c: D(c).scaleb(-2)))
        return Coupon(kind="amount_off", value=value, **common)
    rate = draw(st.integers(1, 99).map(lambda r: D(r).scaleb(-2)))
    max_off = draw(st.none() | st.integers(1, 5_000).map(lambda c: D(c).scaleb(-2)))
    return Coupon(kind="percent_off", rate=rate, max_off=max_off, **common)


members = st.none() | st.builds(
    Member,
    is_member=st.booleans(),
    tier=st.none() | tiers,
    birthday=st.none() | st.just(BirthdayInfo(month=3, day=4)),
)
policies = st.builds(
    PricingPolicy,
    stacking=st.sampled_from(["best_single", "multiply"]),
    coupon_stacking=st.sampled_from(["one_per_group", "single"]),
    coupons_on_flagged=st.booleans(),
)
days = st.dates(min_value=dt.date(2026, 2, 23), max_value=dt.date(2026, 3, 8))


def expected_best_single(line: Line, member, rules, day) -> D:
    """The largest single member discount, recomputed independently of the engine."""
    if member is None or not member.is_member:
        return D("0.00")
    original = line.item.shelf_price * line.quantity
    best = D("0.00")
    for rule in rules:
        if line.item.flagged and not rule.applies_to_flagged:
            continue
        if rule.tiers and member.tier not in rule.tiers:
            continue
        if not rule.scope.contains(line.item) or not matches(rule.schedule, day, member.birthday):
            continue
        if rule.kind == "member_price":
            mp = line.item.member_price
            offer = (line.item.shelf_price - mp) * line.quantity if mp is not None else D(0)
        else:
            offer = (original * (1 - rule.rate)).quantize(D("0.01"), rounding="ROUND_HALF_UP")
        best = max(best, offer)
    return best


@settings(max_examples=300)
@given(
    lines=lines_st,
    member=members,
    rules=st.lists(rules_st(), max_size=6),
    coupons=st.lists(coupons_st(), max_size=4),
    policy=policies,
    day=days,
)
def test_pricing_invariants_hold_for_any_basket(lines, member, rules, coupons, policy, day):
    basket = price_basket(lines, member, rules, coupons, policy, day)
    assert_invariants(basket)
    assert len(basket.coupons_applied) + len(basket.coupons_rejected) == len(coupons)
    for applied in basket.coupons_applied:
        assert 0 < applied.amount <= applied.face_amount
        assert applied.amount <= applied.eligible_amount
    walk_in = member is None or not member.is_member
    for line, priced in zip(lines, basket.lines, strict=True):
        if walk_in:
            assert priced.member_discount == 0
        if policy.stacking == "best_single":
            assert priced.member_discount == expected_best_single(line, member, rules, day)
        else:
            assert priced.member_discount >= expected_best_single(line, member, rules, day)
        if line.item.flagged and not any(r.applies_to_flagged for r in rules):
            assert priced.member_discount == 0

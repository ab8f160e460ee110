"""Points earning on the self-paid amount, with explanations. Pure: no database."""

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carecard.checkout.engine import (
    DEFAULT_POLICY,
    Coupon,
    DiscountRule,
    Item,
    Line,
    price_basket,
)
from carecard.core.calendar import lunar_to_solar
from carecard.loyalty.earning import (
    DEFAULT_EARNING_RULE,
    DayMultiplier,
    EarningError,
    EarningRule,
    Tender,
    allocate_tenders,
    earn_points,
)
from carecard.loyalty.rules import Member, Schedule

MONDAY = dt.date(2026, 3, 2)
MEMBER = Member(tier="silver")
PER_2_CNY = EarningRule(id="p2", amount_per_point=D("2"))


def item(sku="A", price="100.00", **kw) -> Item:
    return Item(sku=sku, name=kw.pop("name", f"商品{sku}"), shelf_price=D(price), **kw)


def priced(lines, rules=(), coupons=(), member=MEMBER, day=MONDAY):
    return price_basket(lines, member, rules, coupons, DEFAULT_POLICY, day)


def cash(amount) -> Tender:
    return Tender("cash", D(amount))


# --------------------------------------------------------------------------- 王曲同心


def test_wangqu_one_point_per_cny_and_no_points_on_flagged_items():
    day = dt.date(2026, 2, 24)  # 正月初八: member day 9.5折
    rules = (
        DiscountRule(id="base", name="会员折扣", kind="base", rate=D("0.98")),
        DiscountRule(
            id="day",
            name="会员日",
            kind="member_day",
            rate=D("0.95"),
            schedule=Schedule("lunar_days", (8, 18, 28)),
        ),
    )
    lines = [
        Line(item("N1", "100.00", name="复方感冒灵"), 1),
        Line(item("S1", "50.00", name="特价维C", is_special_price=True), 1),
        Line(item("L1", "30.00", name="限量口罩", is_limited=True), 1),
        Line(item("P1", "20.00", name="促销棉签", is_promotional=True), 1),
    ]
    basket = priced(lines, rules, day=day)
    assert basket.net == D("195.00")
    earning = earn_points(
        basket, [Tender("wechat", D("195.00"))], DEFAULT_EARNING_RULE, MEMBER, day
    )
    assert earning.total == 95
    assert [line.points for line in earning.lines] == [95, 0, 0, 0]
    assert earning.lines[0].text == "复方感冒灵：实付 ¥95.00 → 积分基数 ¥95.00 → 95 分"
    assert earning.lines[1].text == "特价维C：不积分（特价商品不参与）"
    assert earning.lines[2].exclusion == "限量商品不参与"
    assert earning.text == "每1元积1分：积分基数 ¥95.00 → 95 分，共 95 分"


# --------------------------------------------------------------------------- amount per point


def test_one_point_per_two_cny_floor_and_half_up():
    basket = priced([Line(item("A", "95.00"), 1)])
    assert earn_points(basket, [cash("95.00")], PER_2_CNY, MEMBER, MONDAY).total == 47
    half_up = EarningRule(amount_per_point=D("2"), rounding="half_up")
    assert earn_points(basket, [cash("95.00")], half_up, MEMBER, MONDAY).total == 48
    assert PER_2_CNY.label == "每2元积1分"


def test_points_are_rounded_per_receipt_not_per_line():
    lines = [Line(item(sku, "1.50"), 1) for sku in "ABC"]
    earning = earn_points(priced(lines), [cash("4.50")], PER_2_CNY, MEMBER, MONDAY)
    # per line each 1.50 would floor to 0; the receipt's 4.50 → 2 points, split by largest share
    assert earning.base_points == 2
    assert [line.points for line in earning.lines] == [1, 1, 0]
    assert earning.total == 2


# --------------------------------------------------------------------------- medical insurance


def test_insurance_pays_listed_lines_first_and_earns_nothing():
    listed = item("YB", "80.00", name="医保降压药", is_insurance_listed=True)
    other = item("NO", "40.00", name="保健品", item_class="health_food")
    basket = priced([Line(listed, 1), Line(other, 1)])
    tenders = [
        Tender("insurance_pool", D("50.00")),
        Tender("insurance_personal", D("20.00")),
        Tender("wechat", D("50.00")),
    ]
    earning = earn_points(basket, tenders, DEFAULT_EARNING_RULE, MEMBER, MONDAY)
    first, second = earning.lines
    assert dict(first.tender_shares) == {
        "insurance_pool": D("50.00"),
        "insurance_personal": D("20.00"),
    }
    assert (first.earnable_amount, second.earnable_amount) == (D("10.00"), D("40.00"))
    assert earning.total == 50
    assert first.text == (
        "医保降压药：实付 ¥80.00，医保统筹 ¥50.00 不积分，医保个人账户 ¥20.00 不积分"
        " → 积分基数 ¥10.00 → 10 分"
    )


def test_insurance_beyond_listed_lines_spills_over_pro_rata():
    lines = [
        Line(item("YB", "30.00", is_insurance_listed=True), 1),
        Line(item("X", "60.00"), 1),
        Line(item("Y", "40.00"), 1),
    ]
    basket = priced(lines)
    tenders = [Tender("insurance_personal", D("50.00")), cash("80.00")]
    shares = allocate_tenders(basket, tenders, DEFAULT_EARNING_RULE)
    assert [s.get("insurance_personal") for s in shares] == [D("30.00"), D("12.00"), D("8.00")]
    earning = earn_points(basket, tenders, DEFAULT_EARNING_RULE, MEMBER, MONDAY)
    assert earning.total == 80


def test_a_basket_paid_entirely_by_insurance_earns_nothing():
    basket = priced([Line(item("YB", "66.60", is_insurance_listed=True), 1)])
    rule = EarningRule(receipt_bonus=5)
    earning = earn_points(basket, [Tender("insurance_pool", D("66.60"))], rule, MEMBER, MONDAY)
    assert earning.total == 0
    assert earning.bonus_points == 0
    assert earning.text == "每1元积1分：本单无可积分金额"


# --------------------------------------------------------------------------- coupons and points


def test_points_funded_coupon_share_earns_nothing():
    coupon = Coupon(code="PT20", kind="amount_off", value=D("20"), points_funded=True)
    basket = priced([Line(item("A", "100.00", name="钙片"), 1)], coupons=[coupon])
    earning = earn_points(basket, [cash("80.00")], DEFAULT_EARNING_RULE, MEMBER, MONDAY)
    assert earning.total == 80
    assert earning.lines[0].points_funded_discount == D("20.00")
    assert earning.lines[0].text == (
        "钙片：实付 ¥80.00，积分兑换券抵扣 ¥20.00 不积分 → 积分基数 ¥80.00 → 80 分"
    )


def test_points_and_coupon_tenders_reduce_the_base():
    basket = priced([Line(item("A", "100.00"), 1)])
    tenders = [Tender("points", D("10.00")), Tender("coupon", D("5.00")), cash("85.00")]
    assert earn_points(basket, tenders, DEFAULT_EARNING_RULE, MEMBER, MONDAY).total == 85


def test_stored_value_earns_unless_the_rule_excludes_it():
    basket = priced([Line(item("A", "100.00"), 1)])
    tenders = [Tender("stored_value", D("60.00")), cash("40.00")]
    assert earn_points(basket, tenders, DEFAULT_EARNING_RULE, MEMBER, MONDAY).total == 100
    no_sv = EarningRule(non_earning_tenders={"coupon", "stored_value"})
    assert earn_points(basket, tenders, no_sv, MEMBER, MONDAY).total == 40


def test_points_and_stored_value_never_pay_for_excluded_items():
    normal = item("A", "10.00")
    special = item("S", "90.00", is_special_price=True)
    basket = priced([Line(normal, 1), Line(special, 1)])
    ok = allocate_tenders(basket, [Tender("points", D("10.00")), cash("90.00")], PER_2_CNY)
    assert ok[0] == {"points": D("10.00")}
    assert ok[1] == {}
    with pytest.raises(EarningError) as exc:
        earn_points(
            basket, [Tender("points", D("10.01")), cash("89.99")], PER_2_CNY, MEMBER, MONDAY
        )
    assert exc.value.code == "restricted_tender_on_excluded_items"


# --------------------------------------------------------------------------- multipliers


def test_multipliers_sku_category_member_day_and_tier():
    member_day = lunar_to_solar(2026, 3, 18)
    rule = EarningRule(
        sku_multipliers={"SKU2": D("2")},
        category_multipliers={30: D("3"), 3: D("1.5")},
        day_multipliers=(
            DayMultiplier("会员日双倍", Schedule("lunar_days", (8, 18, 28)), D("2")),
            DayMultiplier("每日", Schedule(), D("1")),
        ),
        tier_multipliers={"gold": D("1.2")},
    )
    lines = [
        Line(item("SKU2", "10.00", category_ids=(30, 3)), 1),  # SKU beats category
        Line(item("B", "10.00", category_ids=(30, 3)), 1),  # most specific category: 3×
        Line(item("C", "10.00", category_ids=(31, 3)), 1),  # parent category: 1.5×
        Line(item("D", "10.00", name="维C"), 1),
    ]
    gold = Member(tier="gold")
    basket = priced(lines, member=gold, day=member_day)
    earning = earn_points(basket, [cash("40.00")], rule, gold, member_day)
    assert [line.multiplier for line in earning.lines] == [
        D("4.8"),
        D("7.2"),
        D("3.6"),
        D("2.4"),
    ]
    assert [line.points for line in earning.lines] == [48, 72, 36, 24]
    assert earning.lines[3].text == (
        "维C：实付 ¥10.00 → 积分基数 ¥10.00 → 10 分 × 2（会员日双倍） × 1.2（gold 等级） = 24 分"
    )
    plain_day = earn_points(basket, [cash("40.00")], rule, Member(tier="silver"), MONDAY)
    assert [line.points for line in plain_day.lines] == [20, 30, 15, 10]
    assert rule.max_multiplier == D("7.2")


def test_receipt_bonus_and_minimum_amount():
    rule = EarningRule(receipt_bonus=10, min_amount=D("20.00"))
    basket = priced([Line(item("A", "25.00"), 1)])
    earning = earn_points(basket, [cash("25.00")], rule, MEMBER, MONDAY)
    assert (earning.line_points, earning.bonus_points, earning.total) == (25, 10, 35)
    assert earning.text == "每1元积1分：积分基数 ¥25.00 → 25 分，每单奖励 10 分，共 35 分"
    small = priced([Line(item("A", "19.99"), 1)])
    earning = earn_points(small, [cash("19.99")], rule, MEMBER, MONDAY)
    assert earning.total == 0
    assert earning.text == "每1元积1分：积分基数 ¥19.99 未满 ¥20.00，不积分"


def test_walk_in_earns_nothing():
    basket = priced([Line(item(), 1)], member=None)
    earning = earn_points(basket, [cash("100.00")], DEFAULT_EARNING_RULE, None, MONDAY)
    assert earning.total == 0
    assert not earning.member_earns
    assert earning.text == "非会员不积分"
    assert earning.lines[0].text == "商品A：非会员不积分"


# --------------------------------------------------------------------------- bad input


def test_tenders_must_add_up_to_the_basket_net():
    basket = priced([Line(item(), 1)])
    with pytest.raises(EarningError) as exc:
        earn_points(basket, [cash("99.99")], DEFAULT_EARNING_RULE, MEMBER, MONDAY)
    assert exc.value.code == "tender_total_mismatch"
    assert exc.value.field == "tenders"
    assert exc.value.message == "支付合计 ¥99.99 与应付金额 ¥100.00 不符"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Tender("gold_bar", D(1)), "kind"),
        (lambda: Tender("cash", 1.5), "amount"),
        (lambda: Tender("cash", D("-1")), "amount"),
        (lambda: Tender("cash", D("0.001")), "amount"),
        (lambda: EarningRule(amount_per_point=D(0)), "amount_per_point"),
        (lambda: EarningRule(rounding="ceil"), "rounding"),
        (lambda: EarningRule(sku_multipliers={"A": 2.0}), "multipliers"),
        (lambda: EarningRule(receipt_bonus=-1), "receipt_bonus"),
        (lambda: EarningRule(non_earning_tenders={"iou"}), "non_earning_tenders"),
    ],
)
def test_bad_earning_input_raises_a_typed_error(build, field):
    with pytest.raises(EarningError) as exc:
        build()
    assert exc.value.field == field


# --------------------------------------------------------------------------- properties

money = st.integers(min_value=0, max_value=30_000).map(lambda c: D(c).scaleb(-2))
items = st.builds(
    Item,
    sku=st.sampled_from(["A", "B", "C", "D"]),
    name=st.just("商品"),
    category_ids=st.sampled_from([(), (1,), (2, 1)]),
    shelf_price=money,
    is_special_price=st.booleans(),
    is_insurance_listed=st.booleans(),
)
multipliers = st.sampled_from([D("0.5"), D(1), D("1.5"), D(2), D(3)])
earning_rules = st.builds(
    EarningRule,
    amount_per_point=st.sampled_from([D(1), D(2), D("0.5"), D("10")]),
    rounding=st.sampled_from(["floor", "half_up"]),
    sku_multipliers=st.dictionaries(st.sampled_from(["A", "B"]), multipliers, max_size=2),
    category_multipliers=st.dictionaries(st.sampled_from([1, 2]), multipliers, max_size=2),
    tier_multipliers=st.dictionaries(st.just("gold"), multipliers, max_size=1),
    day_multipliers=st.lists(
        st.builds(DayMultiplier, st.just("会员日"), st.just(Schedule()), multipliers), max_size=2
    ).map(tuple),
    receipt_bonus=st.integers(0, 20),
    min_amount=st.sampled_from([D(0), D(10)]),
    non_earning_tenders=st.sampled_from([{"coupon"}, {"coupon", "stored_value"}, set()]),
)


def cents_upto(draw, limit: D) -> D:
    return D(draw(st.integers(0, max(0, int(limit * 100))))).scaleb(-2)


@settings(max_examples=300)
@given(
    data=st.data(),
    lines=st.lists(st.builds(Line, items, st.integers(1, 5)), min_size=1, max_size=5),
    rule=earning_rules,
    member=st.none() | st.builds(Member, tier=st.sampled_from([None, "gold"])),
)
def test_earning_is_never_negative_and_bounded_by_the_self_paid_amount(data, lines, rule, member):
    coupon = Coupon(code="PT", kind="amount_off", value=D("5.00"), points_funded=True)
    basket = price_basket(lines, member, (), (coupon,), DEFAULT_POLICY, MONDAY)
    draw = data.draw
    listed_net = sum((ln.net for ln in basket.lines if ln.item.is_insurance_listed), D(0))
    insurance = cents_upto(draw, listed_net)
    earning_net = sum((ln.net for ln in basket.lines if rule.scope.contains(ln.item)), D(0))
    points = cents_upto(draw, earning_net - insurance)
    stored = cents_upto(draw, earning_net - insurance - points)
    voucher = cents_upto(draw, basket.net - insurance - points - stored)
    paid_cash = basket.net - insurance - points - stored - voucher
    tenders = [
        Tender("insurance_pool", insurance),
        Tender("points", points),
        Tender("stored_value", stored),
        Tender("coupon", voucher),
        Tender("alipay", paid_cash),
    ]
    earning = earn_points(basket, tenders, rule, member, MONDAY)

    assert earning.total >= 0
    assert all(line.points >= 0 and line.base_points >= 0 for line in earning.lines)
    assert earning.total == earning.line_points + earning.bonus_points
    self_paid = paid_cash + (0 if "stored_value" in rule.non_earning_tenders else stored)
    if "coupon" not in rule.non_earning_tenders:
        self_paid += voucher
    assert earning.earnable_amount <= self_paid
    for line in earning.lines:
        assert 0 <= line.earnable_amount <= line.net
    if member is None:
        assert earning.total == 0
    base = earning.earnable_amount / rule.amount_per_point
    if rule.rounding == "floor":
        bound = int(self_paid / rule.amount_per_point) * rule.max_multiplier + rule.receipt_bonus
    else:  # half up: each line's product may round up by at most half a point
        bound = (int(base) + 1) * rule.max_multiplier + len(lines) + rule.receipt_bonus
    assert earning.total <= bound

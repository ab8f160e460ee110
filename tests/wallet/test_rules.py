"""Pure stored-value arithmetic (S-1, S-2): bonus tiers, limits, splits, refunds. No database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carecard.wallet.rules import (
    BonusTier,
    Split,
    balance_limit,
    best_tier,
    bonus_for,
    max_topup,
    refund_due,
    split_payment,
    split_reversal,
)

D = Decimal
TIERS = [
    BonusTier(D("500.00"), D("20.00"), rule_id=1, name="充500送20"),
    BonusTier(D("1000.00"), D("50.00"), rule_id=2, name="充1000送50"),
]


def cents(lo: int, hi: int) -> st.SearchStrategy[Decimal]:
    return st.integers(lo, hi).map(lambda c: D(c).scaleb(-2))


@pytest.mark.parametrize(
    ("amount", "bonus"),
    [
        ("0.01", "0.00"),
        ("499.99", "0.00"),
        ("500.00", "20.00"),
        ("999.99", "20.00"),
        ("1000.00", "50.00"),
        ("4000.00", "50.00"),
    ],
)
def test_the_best_single_tier_applies(amount, bonus):
    assert bonus_for(D(amount), TIERS) == D(bonus)


def test_tiers_never_stack_and_ties_are_deterministic():
    tiers = [
        BonusTier(D("300"), D("30"), rule_id=7),
        BonusTier(D("200"), D("30"), rule_id=3),
        BonusTier(D("300"), D("30"), rule_id=5),
        BonusTier(D("100"), D("10"), rule_id=1),
    ]
    assert best_tier(D("350"), tiers).rule_id == 5  # largest bonus, higher threshold, lower id
    assert best_tier(D("250"), tiers).rule_id == 3
    assert best_tier(D("99.99"), tiers) is None


def test_max_topup_examples():
    assert max_topup(D("500.00"), TIERS) == D("499.99")  # 500 would bring 20 of bonus
    assert max_topup(D("1000.00"), TIERS) == D("980.00")  # 980 + 20 fills it exactly
    assert max_topup(D("5000.00"), TIERS) == D("4950.00")
    assert max_topup(D("0.00"), TIERS) == D("0.00")
    assert max_topup(D("-3.00"), TIERS) == D("0.00")


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    room=cents(-100, 3000),
    tiers=st.lists(
        st.builds(BonusTier, min_amount=cents(1, 2000), bonus=cents(1, 500)), max_size=3
    ),
)
def test_max_topup_is_the_largest_payment_that_fits(room, tiers):
    best = D("0.00")
    for c in range(1, max(0, int(room * 100)) + 1):
        x = D(c).scaleb(-2)
        if x + bonus_for(x, tiers) <= room:
            best = x
    assert max_topup(room, tiers) == best


def test_limits():
    cap, unnamed = D("5000.00"), D("1000.00")
    assert (
        balance_limit(cap=cap, unnamed_cap=unnamed, real_name_required=True, real_named=False)
        == unnamed
    )
    assert (
        balance_limit(cap=cap, unnamed_cap=unnamed, real_name_required=True, real_named=True) == cap
    )
    assert (
        balance_limit(cap=cap, unnamed_cap=unnamed, real_name_required=False, real_named=False)
        == cap
    )
    assert balance_limit(
        cap=D("800"), unnamed_cap=unnamed, real_name_required=True, real_named=False
    ) == D("800")


def test_payment_is_taken_pro_rata_to_the_cent():
    assert split_payment(D("105.00"), principal=D("1000.00"), bonus=D("50.00")) == Split(
        D("100.00"), D("5.00")
    )
    assert split_payment(D("0.01"), principal=D("1000.00"), bonus=D("50.00")) == Split(
        D("0.01"), D("0.00")
    )
    assert split_payment(D("1050.00"), principal=D("1000.00"), bonus=D("50.00")) == Split(
        D("1000.00"), D("50.00")
    )
    assert split_payment(D("3.00"), principal=D("0.00"), bonus=D("7.00")) == Split(
        D("0.00"), D("3.00")
    )
    with pytest.raises(ValueError, match="cannot pay"):
        split_payment(D("10.01"), principal=D("10.00"), bonus=D("0.00"))


@settings(max_examples=80, derandomize=True, deadline=None)
@given(principal=cents(0, 500000), bonus=cents(0, 50000), data=st.data())
def test_payment_parts_are_exact_and_within_holdings(principal, bonus, data):
    if principal + bonus == 0:
        return
    amount = data.draw(cents(1, int((principal + bonus) * 100)))
    split = split_payment(amount, principal=principal, bonus=bonus)
    assert split.total == amount
    assert D(0) <= split.principal <= principal
    assert D(0) <= split.bonus <= bonus
    assert abs(split.bonus - amount * bonus / (principal + bonus)) < D("0.01")


@settings(max_examples=80, derandomize=True, deadline=None)
@given(paid_p=cents(0, 100000), paid_b=cents(0, 10000), data=st.data())
def test_reversals_in_parts_give_back_exactly_the_payment(paid_p, paid_b, data):
    paid = Split(paid_p, paid_b)
    if paid.total == 0:
        return
    back = Split(D("0.00"), D("0.00"))
    steps = data.draw(st.integers(0, 4))
    while back.total < paid.total:
        left = int((paid.total - back.total) * 100)
        # A few partial returns, then the rest in one.
        amount = data.draw(cents(1, left)) if steps else D(left).scaleb(-2)
        steps = max(0, steps - 1)
        part = split_reversal(amount, paid=paid, reversed_before=back)
        assert part.total == amount
        assert part.principal >= 0
        assert part.bonus >= 0
        back = Split(back.principal + part.principal, back.bonus + part.bonus)
        assert back.principal <= paid.principal
        assert back.bonus <= paid.bonus
    assert back == paid
    with pytest.raises(ValueError, match="cannot reverse"):
        split_reversal(D("0.01"), paid=paid, reversed_before=back)


def test_refund_rules():
    kw = {"principal": D("800.00"), "bonus": D("40.00"), "used_bonus": D("10.00")}
    assert refund_due(rule="remaining", bonus_refundable=False, **kw) == Split(D("800.00"), D(0))
    assert refund_due(rule="remaining", bonus_refundable=True, **kw) == Split(
        D("800.00"), D("40.00")
    )
    assert refund_due(rule="remaining_less_used_bonus", bonus_refundable=False, **kw) == Split(
        D("790.00"), D(0)
    )
    assert refund_due(rule="none", bonus_refundable=True, **kw).total == 0
    # The deduction never makes the refund negative; it comes off the principal first.
    assert refund_due(
        rule="remaining_less_used_bonus",
        bonus_refundable=True,
        principal=D("5.00"),
        bonus=D("3.00"),
        used_bonus=D("6.00"),
    ) == Split(D("0.00"), D("2.00"))
    assert refund_due(
        rule="remaining_less_used_bonus",
        bonus_refundable=False,
        principal=D("5.00"),
        bonus=D("3.00"),
        used_bonus=D("60.00"),
    ) == Split(D("0.00"), D("0.00"))
    with pytest.raises(ValueError, match="unknown"):
        refund_due(rule="half", bonus_refundable=False, **kw)

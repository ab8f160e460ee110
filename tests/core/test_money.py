"""Money helpers: rounding, exact allocation, discount labels. Pure: no database."""

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carecard.core.money import allocate, allocate_units, format_cny, is_money, rate_label, to_money


def test_to_money_rounds_half_up_to_cents():
    assert to_money(D("1.005")) == D("1.01")
    assert to_money(D("1.004")) == D("1.00")
    assert to_money(D("-1.005")) == D("-1.01")  # half away from zero
    assert to_money("2.345") == D("2.35")
    assert to_money(3) == D("3.00")
    assert str(to_money(3)) == "3.00"


@pytest.mark.parametrize("bad", [0.1, 1.0, True])
def test_to_money_rejects_float_and_bool(bad):
    with pytest.raises(TypeError):
        to_money(bad)


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", D("Infinity")])
def test_to_money_rejects_non_numbers(bad):
    with pytest.raises(ValueError):  # noqa: PT011 — the message names the bad value
        to_money(bad)


def test_is_money():
    assert is_money(D("1.5"))
    assert is_money(D("2.00"))
    assert not is_money(D("1.005"))
    assert not is_money(1)
    assert not is_money(D("NaN"))


def test_allocate_largest_remainder():
    assert allocate(D("10.00"), [D(1), D(1), D(1)]) == [D("3.34"), D("3.33"), D("3.33")]
    assert allocate(D("0.05"), [D(1), D(2), D(2)]) == [D("0.01"), D("0.02"), D("0.02")]
    # 1.00 over 3 : 1 → 0.75 / 0.25 exactly
    assert allocate(D("1.00"), [D("30.00"), D("10.00")]) == [D("0.75"), D("0.25")]
    # the odd cent goes to the largest remainder, not simply the first weight
    assert allocate(D("0.10"), [D("1"), D("2"), D("4")]) == [D("0.01"), D("0.03"), D("0.06")]
    assert str(allocate(D("1.00"), [D(1)])[0]) == "1.00"


def test_allocate_zero_weights_split_equally():
    assert allocate(D("0.10"), [D(0), D(0), D(0)]) == [D("0.04"), D("0.03"), D("0.03")]
    assert allocate(D("0.00"), [D(0), D(0)]) == [D("0.00"), D("0.00")]


def test_allocate_edge_cases():
    assert allocate(D("0.00"), []) == []
    with pytest.raises(ValueError):  # noqa: PT011
        allocate(D("1.00"), [])
    with pytest.raises(ValueError):  # noqa: PT011
        allocate(D("1.00"), [D(1), D(-1)])
    with pytest.raises(ValueError):  # noqa: PT011 — not whole cents
        allocate(D("1.005"), [D(1)])
    assert allocate(D("-0.10"), [D(1), D(2)]) == [D("-0.03"), D("-0.07")]


def test_allocate_units():
    assert allocate_units(7, [D("1.5"), D("1.5"), D(0)]) == [4, 3, 0]
    assert allocate_units(0, [D(1)]) == [0]


def test_rate_label():
    assert rate_label(D("0.95")) == "9.5折"
    assert rate_label(D("0.8")) == "8折"
    assert rate_label(D("0.80")) == "8折"
    assert rate_label(D("0.88")) == "8.8折"
    assert rate_label(D("0.075")) == "0.75折"
    assert rate_label(D("0.8075")) == "8.075折"
    assert rate_label(D("1")) == "原价"
    assert rate_label(D("0")) == "免费"
    with pytest.raises(ValueError):  # noqa: PT011
        rate_label(D("1.2"))


def test_format_cny():
    assert format_cny(D("12.5")) == "¥12.50"


cents = st.integers(min_value=0, max_value=10_000_000).map(lambda c: D(c).scaleb(-2))
weights = st.lists(
    st.integers(min_value=0, max_value=1_000_000).map(lambda c: D(c).scaleb(-2)),
    min_size=1,
    max_size=12,
)


@given(total=cents, weights=weights)
def test_allocate_sums_exactly_and_stays_within_a_cent(total, weights):
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    assert all(is_money(p) and p >= 0 for p in parts)
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = (
            Fraction(total) * Fraction(weight) / Fraction(weight_sum)
            if weight_sum
            else Fraction(total) / len(weights)
        )
        assert abs(Fraction(part) - exact) < Fraction(1, 100)


@given(data=st.data(), weights=weights)
def test_allocate_never_exceeds_a_weight_when_total_fits(data, weights):
    # The engine relies on this: a coupon split by line net never drives a line below zero.
    cap = int(sum(weights) * 100)
    total = D(data.draw(st.integers(min_value=0, max_value=cap))).scaleb(-2)
    parts = allocate(total, weights)
    assert all(p <= w for p, w in zip(parts, weights, strict=True))


def _largest_remainder_by_fractions(total, weights):
    """The textbook method in exact fractions: the reference ``allocate_units`` must equal."""
    exact = [Fraction(w) for w in weights]
    weight_sum = sum(exact) or None
    even = Fraction(total, len(weights))
    shares = [total * w / weight_sum if weight_sum else even for w in exact]
    parts = [s.numerator // s.denominator for s in shares]
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


mixed_weights = st.lists(
    st.one_of(
        st.integers(min_value=0, max_value=10**9),
        st.decimals(min_value=0, max_value=10**6, places=2),
        st.decimals(min_value=0, max_value=10**3, places=5),
        st.integers(min_value=0, max_value=10**4).map(lambda n: D(n).scaleb(3)),  # 1E+3 …
    ),
    min_size=1,
    max_size=12,
)


@given(total=st.integers(min_value=0, max_value=10**9), weights=mixed_weights)
def test_allocate_units_equals_the_exact_fraction_method(total, weights):
    assert allocate_units(total, weights) == _largest_remainder_by_fractions(total, weights)

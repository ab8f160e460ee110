import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carecard.core.idcard import InvalidIdNumber, check_digit, make_id_number, parse_id_number

TODAY = dt.date(2026, 11, 24)


def test_known_valid_number_with_x():
    # GB 11643 worked example: 11010519491231002X
    info = parse_id_number("11010519491231002x", today=TODAY)
    assert info.number == "11010519491231002X"
    assert info.birthday == dt.date(1949, 12, 31)
    assert info.gender == "F"


def test_legacy_15_digits_upgraded():
    info = parse_id_number("110105491231002", today=TODAY)
    assert info.number == "11010519491231002X"
    assert info.gender == "F"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("11010519491231002", "format"),
        ("11010519491231002A", "format"),
        ("110105194913310021", "birthday"),
        ("110105203001010011", "birthday"),
        ("110105194912310021", "checksum"),
    ],
)
def test_invalid_numbers(raw, reason):
    with pytest.raises(InvalidIdNumber) as exc:
        parse_id_number(raw, today=TODAY)
    assert exc.value.reason == reason


@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY),
    st.integers(min_value=0, max_value=999),
)
def test_generated_numbers_roundtrip(birthday, seq):
    number = make_id_number("440305", birthday, seq)
    info = parse_id_number(number, today=TODAY)
    assert info.birthday == birthday
    assert info.gender == ("M" if seq % 2 else "F")
    # flipping the check digit always breaks the checksum
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    with pytest.raises(InvalidIdNumber):
        parse_id_number(wrong, today=TODAY)


def test_check_digit_table():
    assert check_digit("11010519491231002") == "X"

"""The cached per-segment mobile check used by imports agrees with phonenumbers (pure)."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from carecard.core.phone import SEGMENT_DIGITS, InvalidPhone, normalize_mobile


def _reference(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, "CN"))
    except phonenumbers.NumberParseException:
        return False


def test_segment_cache_agrees_with_phonenumbers():
    rng = random.Random(20261124)
    for _ in range(4000):
        number = f"1{rng.randrange(3, 10)}{rng.randrange(0, 10**9):09d}"
        try:
            ok = normalize_mobile(number) == number
        except InvalidPhone:
            ok = False
        assert ok is _reference(number), number


def test_validity_is_decided_by_the_segment_for_every_segment():
    # If a metadata release adds a rule on a further digit this fails, and SEGMENT_DIGITS must
    # grow: the cache would otherwise accept or refuse a whole segment wrongly.
    rng = random.Random(11)
    width = 11 - SEGMENT_DIGITS
    for segment in range(10 ** (SEGMENT_DIGITS - 1), 2 * 10 ** (SEGMENT_DIGITS - 1)):
        rests = {"0" * width, "9" * width, *(f"{rng.randrange(10**width):0{width}d}" for _ in "ab")}
        assert len({_reference(f"{segment}{rest}") for rest in rests}) == 1, segment


@pytest.mark.parametrize("number", ["17912345678", "17406123456", "14012345678"])
def test_odd_prefixes_are_refused_cleanly(number):
    with pytest.raises(InvalidPhone):
        normalize_mobile(number)

"""The cached per-segment mobile check used by imports agrees with phonenumbers (pure)."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from carecard.core.phone import InvalidPhone, normalize_mobile


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


@pytest.mark.parametrize("number", ["17912345678", "17406123456", "14012345678"])
def test_odd_prefixes_are_refused_cleanly(number):
    with pytest.raises(InvalidPhone):
        normalize_mobile(number)

import datetime as dt

import pytest

from carecard.core import crypto
from carecard.core.calendar import InvalidLunarDate, lunar_to_solar, solar_to_lunar
from carecard.core.names import pinyin_keys
from carecard.core.phone import InvalidPhone, mask_id_number, mask_phone, normalize_mobile


def test_phone_normalisation_and_masking():
    assert normalize_mobile("+86 138-1234-5678") == "13812345678"
    assert normalize_mobile("0086 13812345678") == "13812345678"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("11010519491231002X") == "110105********002X"
    for bad in ("12345", "23812345678", "1381234567", "abc", ""):
        with pytest.raises(InvalidPhone):
            normalize_mobile(bad)


def test_pinyin_keys_cover_polyphonic_readings():
    keys = pinyin_keys("曾小明")
    assert "zxm" in keys
    assert "cxm" in keys
    assert "zengxiaoming" in keys
    assert "zsf" in pinyin_keys("张三丰")


def test_lunar_roundtrip_and_leap_month():
    # 2023 had a leap 2nd month; 闰二月初一 = 2023-03-22
    assert lunar_to_solar(2023, 2, 1, leap=True) == dt.date(2023, 3, 22)
    assert lunar_to_solar(2023, 2, 1) == dt.date(2023, 2, 20)
    assert solar_to_lunar(dt.date(2023, 3, 22)) == (2023, 2, 1, True)
    with pytest.raises(InvalidLunarDate):
        lunar_to_solar(2024, 2, 1, leap=True)  # 2024 has no leap 2nd month
    with pytest.raises(InvalidLunarDate):
        lunar_to_solar(2024, 13, 1)


def test_encryption_roundtrip_is_randomised():
    a, b = crypto.encrypt("青霉素"), crypto.encrypt("青霉素")
    assert a != b
    assert a.startswith("v1:")
    assert crypto.decrypt(a) == "青霉素"
    assert crypto.blind_index("x") == crypto.blind_index("x") != crypto.blind_index("y")
    with pytest.raises(ValueError):  # noqa: PT011 — tampered ciphertext must not decrypt
        crypto.decrypt(a[:-4] + "AAAA")

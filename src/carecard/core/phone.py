"""Mobile phone numbers: validation with ``phonenumbers``, a fast path for mainland mobiles."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from django.conf import settings

_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class InvalidPhone(ValueError):
    pass


SEGMENT_DIGITS = 5


@lru_cache(maxsize=10_000)
def _cn_segment_valid(segment: str) -> bool:
    """Whether an 11-digit mainland mobile starting with this 5-digit segment (号段) is valid.

    The metadata decides validity on at most the first 5 digits and the length (1740[0-5] is
    the longest rule; tests/core/test_phone.py checks every segment of the installed metadata),
    so the answer for one number holds for its whole segment: imports check millions of phones
    against 700 cached answers.
    """
    number = segment.ljust(11, "0")
    if number.startswith("179"):
        # 179xx is also a carrier-selection prefix that parsing may strip: take the full path
        # (which can even find too few digits left).
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(number, "CN"))
        except phonenumbers.NumberParseException:
            return False
    # Otherwise parsing a 1[3-9] national number yields exactly this number; skip the parser.
    return phonenumbers.is_valid_number(
        phonenumbers.PhoneNumber(country_code=86, national_number=int(number))
    )


def normalize_mobile(raw: str, region: str | None = None) -> str:
    """Return the canonical form: 11 digits for mainland mobiles, E.164 for others.

    Raises InvalidPhone when the number is not a valid mobile number.
    """
    value = raw or ""
    if not (len(value) == 11 and value.isascii() and value.isdigit()):
        value = re.sub(r"[\s\-()]", "", value)
        if value.startswith("+86"):
            value = value[3:]
        elif value.startswith("0086"):
            value = value[4:]
    if _CN_MOBILE.match(value):
        # phonenumbers knows which 1xx prefixes are allocated; the regex alone accepts 19x ranges
        # that may not exist yet, so confirm with the metadata (cached per number segment).
        if _cn_segment_valid(value[:SEGMENT_DIGITS]):
            return value
        raise InvalidPhone(value)
    try:
        parsed = phonenumbers.parse(value, region or settings.CARECARD_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(value) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(value)
    kind = phonenumbers.number_type(parsed)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhone(value)
    if parsed.country_code == 86:
        return str(parsed.national_number)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """138****5678 — keeps the first 3 and last 4 digits."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_id_number(number: str) -> str:
    """110105********123X — keeps the area code and the last 4 characters."""
    if not number:
        return ""
    if len(number) < 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]

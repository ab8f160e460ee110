"""Mobile phone numbers: validation with ``phonenumbers``, a fast path for mainland mobiles."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings

_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class InvalidPhone(ValueError):
    pass


def normalize_mobile(raw: str, region: str | None = None) -> str:
    """Return the canonical form: 11 digits for mainland mobiles, E.164 for others.

    Raises InvalidPhone when the number is not a valid mobile number.
    """
    value = re.sub(r"[\s\-()]", "", raw or "")
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086"):
        value = value[4:]
    if _CN_MOBILE.match(value):
        # phonenumbers knows which 1xx prefixes are allocated; the regex alone accepts 19x ranges
        # that may not exist yet, so confirm with the metadata.
        parsed = phonenumbers.parse(value, "CN")
        if phonenumbers.is_valid_number(parsed):
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

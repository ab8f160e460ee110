"""Mainland resident ID numbers (GB 11643-1999), checksum written here on purpose.

Packages on PyPI reject valid newer codes (new administrative divisions), so only structure, date
and checksum are checked — not the area code against a list.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_RE18 = re.compile(r"^[1-9]\d{16}[\dX]$")
_RE15 = re.compile(r"^[1-9]\d{14}$")


@dataclass(frozen=True)
class IdInfo:
    number: str  # normalised 18-digit form
    birthday: dt.date
    gender: str  # "M" or "F"


class InvalidIdNumber(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_digit(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def parse_id_number(raw: str, *, today: dt.date | None = None) -> IdInfo:
    """Validate and normalise an ID number; raise InvalidIdNumber with a reason code.

    Reason codes: ``format`` (not 15/18 digits), ``birthday`` (impossible date), ``checksum``.
    A 15-digit legacy number (born 19xx, no check digit) is upgraded to 18 digits.
    """
    number = raw.strip().upper().replace(" ", "")
    if _RE15.match(number):
        first17 = number[:6] + "19" + number[6:]
        number = first17 + check_digit(first17)
    elif not _RE18.match(number):
        raise InvalidIdNumber("format")
    try:
        birthday = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("birthday") from exc
    today = today or dt.date.today()  # noqa: DTZ011 — a birthday is a calendar date
    if birthday > today or birthday.year < 1890:
        raise InvalidIdNumber("birthday")
    if check_digit(number[:17]) != number[17]:
        raise InvalidIdNumber("checksum")
    gender = "M" if int(number[16]) % 2 else "F"
    return IdInfo(number=number, birthday=birthday, gender=gender)


def make_id_number(area: str, birthday: dt.date, seq: int) -> str:
    """Build a valid 18-digit number (demo data and tests)."""
    first17 = f"{area}{birthday:%Y%m%d}{seq % 1000:03d}"
    return first17 + check_digit(first17)

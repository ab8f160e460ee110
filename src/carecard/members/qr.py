"""Rotating QR tokens for the counter (M-3): ``CC`` + base32(member id, time window, MAC).

The token changes every ``CARECARD_QR_WINDOW_SECONDS``; the counter accepts the current and the
previous window, so a screenshot stops working within two windows. No database row is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

from django.conf import settings

PREFIX = "CC"


def _key() -> bytes:
    return hashlib.sha256(b"carecard-qr:" + settings.SECRET_KEY.encode()).digest()


def _window(now: float | None = None) -> int:
    return int((now if now is not None else time.time()) // settings.CARECARD_QR_WINDOW_SECONDS)


def make_token(member_id: int, *, now: float | None = None) -> str:
    body = struct.pack(">QI", member_id, _window(now) & 0xFFFFFFFF)
    mac = hmac.new(_key(), body, hashlib.sha256).digest()[:8]
    return PREFIX + base64.b32encode(body + mac).decode().rstrip("=")


def read_token(token: str, *, now: float | None = None) -> int | None:
    """The member id of a token that is valid now (or in the previous window), else None."""
    token = token.strip().upper()
    if not token.startswith(PREFIX) or len(token) != 34:
        return None
    try:
        raw = base64.b32decode(token[2:] + "=" * (-len(token[2:]) % 8))
    except ValueError:
        return None
    if len(raw) != 20:
        return None
    body, mac = raw[:12], raw[12:]
    if not hmac.compare_digest(hmac.new(_key(), body, hashlib.sha256).digest()[:8], mac):
        return None
    member_id, window = struct.unpack(">QI", body)
    current = _window(now) & 0xFFFFFFFF
    if window not in (current, (current - 1) & 0xFFFFFFFF):
        return None
    return int(member_id)


def qr_svg(token: str) -> str:
    import segno

    return segno.make(token, error="m").svg_inline(scale=6, border=2)

"""Field encryption for sensitive personal information (G-3).

AES-256-GCM with a random 96-bit nonce per value; the stored text is ``v1:<key id>:<b64 nonce+ct>``
so keys can be rotated: the first configured key encrypts, every configured key decrypts.
``blind_index`` gives a keyed hash so that encrypted values (ID numbers) can still be matched for
duplicate detection without storing them in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "v1"


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@lru_cache(maxsize=1)
def _keys() -> tuple[tuple[str, AESGCM, bytes], ...]:
    raw = settings.CARECARD_FIELD_KEYS
    if not raw:
        path = settings.CARECARD_FIELD_KEY_FILE
        if path.exists():
            raw = path.read_text().strip()
    if not raw:
        raise ImproperlyConfigured(
            "No field-encryption key: set CARECARD_FIELD_KEYS (see docs/operations.md)."
        )
    keys = []
    for item in raw.split(","):
        key = base64.urlsafe_b64decode(item.strip())
        if len(key) != 32:
            raise ImproperlyConfigured("Each CARECARD_FIELD_KEYS entry must be 32 bytes, base64.")
        key_id = hashlib.sha256(key).hexdigest()[:8]
        index_key = hmac.new(key, b"carecard-blind-index", hashlib.sha256).digest()
        keys.append((key_id, AESGCM(key), index_key))
    return tuple(keys)


def reset_key_cache() -> None:
    _keys.cache_clear()


def encrypt(plain: str) -> str:
    key_id, aes, _ = _keys()[0]
    nonce = os.urandom(12)
    ct = aes.encrypt(nonce, plain.encode(), key_id.encode())
    return f"{PREFIX}:{key_id}:{base64.b64encode(nonce + ct).decode()}"


def decrypt(token: str) -> str:
    try:
        prefix, key_id, body = token.split(":", 2)
    except ValueError as exc:
        raise ValueError("not an encrypted value") from exc
    if prefix != PREFIX:
        raise ValueError("unknown encryption version")
    for kid, aes, _ in _keys():
        if kid == key_id:
            try:
                raw = base64.b64decode(body)
                return aes.decrypt(raw[:12], raw[12:], key_id.encode()).decode()
            except (InvalidTag, ValueError) as exc:
                raise ValueError("value does not decrypt (tampered or wrong key)") from exc
    raise ValueError("no key for this value")


def blind_index(value: str) -> str:
    """Keyed hash (with the current key) used to find equal encrypted values."""
    _, _, index_key = _keys()[0]
    return hmac.new(index_key, value.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; empty string stays empty (nothing to hide)."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON value (e.g. a list of allergies) stored encrypted."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if not value:
            return []
        return json.loads(decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value else []
        return value if value is not None else []

    def get_prep_value(self, value: Any) -> Any:
        if value is None or value == []:
            return ""
        return encrypt(json.dumps(value, ensure_ascii=False))

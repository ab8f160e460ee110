"""Idempotent writes (ARCHITECTURE.md): the first result is stored in the same transaction and
returned on replay; the same key with a different body is a 409."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.core import sqlrows
from carecard.core.errors import Conflict, FieldError, ValidationFailed
from carecard.core.models import IdempotencyRecord

MAX_KEY = 100


def request_hash(body: Any) -> str:
    """A stable hash of a request body (keys sorted, Decimals as strings)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str | None) -> str:
    key = (key or "").strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "invalid", _("请提供 1–100 个字符的 Idempotency-Key"))]
        )
    return key


def replay(*, scope: str, key: str, operation: str, digest: str) -> IdempotencyRecord | None:
    """The stored answer for this key, or None when the key is new. A stored answer for a
    different body or operation is a 409 ``idempotency_key_reused``."""
    record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
    if record is None:
        return None
    if record.request_hash != digest or record.operation != operation:
        raise Conflict(
            "idempotency_key_reused",
            _("该 Idempotency-Key 已用于另一个请求"),
            errors=[FieldError("Idempotency-Key", "reused", _("同一个键的请求内容不同"))],
        )
    return record


def claim(*, scope: str, key: str, operation: str, digest: str) -> IdempotencyRecord | None:
    """Insert the key's record inside the caller's transaction. Returns the new record, or
    None when another transaction committed the same key first (the caller then replays).

    ``ON CONFLICT DO NOTHING`` waits for a concurrent insert of the same key and then skips:
    no savepoint and no error to catch (PostgreSQL, and SQLite ≥ 3.35)."""
    now = timezone.now()
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (scope, key, operation, request_hash, status_code, response,"  # noqa: S608
            " created_at) VALUES (%s, %s, %s, %s, 200, '{}', %s)"
            " ON CONFLICT (scope, key) DO NOTHING RETURNING id",
            [scope, key, operation, digest, now],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return IdempotencyRecord(
        pk=row[0],
        scope=scope,
        key=key,
        operation=operation,
        request_hash=digest,
        status_code=200,
        response={},
        created_at=now,
    )


def record(
    *,
    scope: str,
    key: str,
    operation: str,
    digest: str,
    response: dict[str, Any],
    status_code: int = 200,
) -> None:
    """Keep the first answer for the key, as the last write of the caller's transaction. One
    statement for the writes whose retries meet at a lock anyway (a sale locks its member's
    account), sent with the writes before it inside ``sqlrows.deferred()``.

    When another transaction has the key (it committed first, or commits while this insert
    waits on it) the insert fails with an ``IntegrityError`` that ``key_taken`` recognises —
    at once, or where the held writes are sent: the caller's transaction is then undone and
    the caller replays."""
    table = IdempotencyRecord._meta.db_table
    field = IdempotencyRecord._meta.get_field("response")
    conn = sqlrows.db()
    sqlrows.send(
        f"INSERT INTO {table} (scope, key, operation, request_hash, status_code, response,"  # noqa: S608
        " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [
            scope,
            key,
            operation,
            digest,
            status_code,
            field.get_db_prep_save(response, conn),
            timezone.now(),
        ],
        conn,
    )


def key_taken(exc: Exception) -> bool:
    """Whether an ``IntegrityError`` is the key's unique constraint (PostgreSQL names it;
    SQLite names the columns)."""
    text = str(exc)
    return "idempotency_scope_key" in text or "core_idempotencyrecord.scope" in text


def store(record: IdempotencyRecord, *, response: dict[str, Any], status_code: int = 200) -> None:
    record.response = response
    record.status_code = status_code
    sqlrows.update(record, ["response", "status_code"])

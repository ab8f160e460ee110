"""The one place the loyalty app takes row locks (ARCHITECTURE.md: lock, re-read, check, write).

A member's points account row is the lock for everything about the member's points: entries,
lots and the cached balance change only while it is held. Several members are locked in
primary-key order so two transactions can never wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from django.db import connection
from django.db.transaction import TransactionManagementError

from carecard.core import sqlrows
from carecard.core.sqlrows import Shape
from carecard.loyalty.models import PointsAccount


def lock_accounts(member_ids: Iterable[int]) -> dict[int, PointsAccount]:
    """Lock the members' accounts in member-id order, creating missing ones first. Call inside
    a transaction."""
    ids = sorted(set(member_ids))
    locked = {a.pk: a for a in _locked(ids)}
    missing = [PointsAccount(member_id=i) for i in ids if i not in locked]
    if missing:
        # A concurrent first sale may create the same account: the conflict is ignored and the
        # lock below then waits for that transaction.
        PointsAccount.objects.bulk_create(missing, ignore_conflicts=True)
        locked = {a.pk: a for a in _locked(ids)}
    return locked


_account = Shape(PointsAccount)


@cache
def _locked_sql(vendor: str, n: int) -> str:
    q = connection.ops.quote_name
    marks = ", ".join(["%s"] * n)
    sql = (
        f"SELECT {_account.columns('a')} FROM {q(PointsAccount._meta.db_table)} a"  # noqa: S608
        f" WHERE a.{q('member_id')} IN ({marks}) ORDER BY a.{q('member_id')}"
    )
    # SQLite has no row locks: its transactions take the database's write lock at BEGIN.
    return sql + " FOR UPDATE" if connection.features.has_select_for_update else sql


def _locked(ids: list[int]) -> list[PointsAccount]:
    # Prepared SQL (core.sqlrows): every sale to a member takes this lock.
    if not connection.in_atomic_block:
        raise TransactionManagementError("lock_accounts needs a transaction")
    cursor = sqlrows.cursor()
    cursor.execute(_locked_sql(connection.vendor, len(ids)), ids)
    rows = cursor.fetchall()
    return [a for a in (_account.build(row) for row in rows) if a is not None]


def lock_account(member_id: int) -> PointsAccount:
    return lock_accounts([member_id])[member_id]

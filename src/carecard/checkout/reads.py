"""The reads every basket makes, as prepared SQL (``core.sqlrows``): the member with their
tier, points account and aggregates in one statement, and the basket's products in another.

A quote is these two statements and nothing else; the ORM's compiling of the same queries
took longer than the database answering them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone

from carecard.catalog.models import Product
from carecard.checkout import config
from carecard.checkout.models import MemberStats, Sale, SaleLine
from carecard.core import sqlrows
from carecard.core.sqlrows import Shape
from carecard.loyalty.locks import lock_account
from carecard.loyalty.models import MemberTier, PointsAccount, PointsEntry, PointsLot, Tier
from carecard.members.models import Member

# Pricing needs none of the encrypted fields: not loading them spares a decryption per field
# and request.
UNPRICED_MEMBER_FIELDS = (
    "id_number",
    "allergies",
    "medical_history",
    "chronic_conditions",
    "address",
    "community",
    "email",
    "health_interests",
    "contact_channels",
)


@cache
def _shapes() -> tuple[Shape, Shape, Shape, Shape]:
    return (
        Shape(Member, skip=UNPRICED_MEMBER_FIELDS),
        Shape(MemberTier),
        Shape(PointsAccount),
        Shape(MemberStats),
    )


@cache
def _member_sql(vendor: str, with_available: bool) -> str:
    member, tier, account, stats = _shapes()
    q = connection.ops.quote_name
    lot = PointsLot._meta
    available = ""
    if with_available:
        # Spendable now: unexpired lots with points left that are past their pending days.
        available = (
            f", (SELECT COALESCE(SUM(l.{q('remaining')}), 0) FROM {q(lot.db_table)} l"  # noqa: S608
            f" WHERE l.{q('member_id')} = m.{q('id')} AND l.{q('remaining')} > 0"
            f" AND (l.{q('expires_on')} IS NULL OR l.{q('expires_on')} >= %s)"
            f" AND l.{q('available_at')} <= %s)"
        )
    return (
        f"SELECT {member.columns('m')}, {tier.columns('t')}, {account.columns('a')},"  # noqa: S608
        f" {stats.columns('s')}{available}"
        f" FROM {q(Member._meta.db_table)} m"
        f" LEFT JOIN {q(MemberTier._meta.db_table)} t ON t.{q('member_id')} = m.{q('id')}"
        f" LEFT JOIN {q(PointsAccount._meta.db_table)} a ON a.{q('member_id')} = m.{q('id')}"
        f" LEFT JOIN {q(MemberStats._meta.db_table)} s ON s.{q('member_id')} = m.{q('id')}"
        f" WHERE m.{q('id')} = %s"
    )


def _tier(tier_id: int) -> Tier:
    for tier in config.tiers():
        if tier.pk == tier_id:
            return tier
    return Tier.objects.get(pk=tier_id)  # created since the cache was filled


def member_for_sale(
    member_id: int, *, available_at: dt.datetime | None = None
) -> tuple[Member | None, int | None]:
    """The member (encrypted fields deferred) with ``tier_state``, ``points_account`` and
    ``stats`` attached — each None when the member has none — and, with ``available_at``,
    their spendable points at that moment."""
    member_shape, tier_shape, account_shape, stats_shape = _shapes()
    params: list[Any] = []
    if available_at is not None:
        params += [
            connection.ops.adapt_datefield_value(timezone.localdate(available_at)),
            connection.ops.adapt_datetimefield_value(available_at),
        ]
    params.append(member_id)
    cursor = sqlrows.cursor()
    cursor.execute(_member_sql(connection.vendor, available_at is not None), params)
    row = cursor.fetchone()
    if row is None:
        return None, None
    member = member_shape.build(row)
    at = member_shape.width
    state = tier_shape.build(row, at)
    at += tier_shape.width
    account = account_shape.build(row, at)
    at += account_shape.width
    stats = stats_shape.build(row, at)
    if state is not None:
        state.tier = _tier(state.tier_id)
    for name, value in (("tier_state", state), ("points_account", account), ("stats", stats)):
        Member._meta.get_field(name).set_cached_value(member, value)
    available = None
    if available_at is not None:
        lots = int(row[-1] or 0)
        available = max(0, lots - account.debt) if account is not None else 0
    return member, available


_product = Shape(Product)


@cache
def _products_sql(vendor: str, n: int) -> str:
    q = connection.ops.quote_name
    marks = ", ".join(["%s"] * n)
    return (
        f"SELECT {_product.columns('p')} FROM {q(Product._meta.db_table)} p"  # noqa: S608
        f" WHERE p.{q('sku')} IN ({marks})"
    )


def products_by_sku(skus: set[str]) -> dict[str, Product]:
    if not skus:
        return {}
    ordered = sorted(skus)
    cursor = sqlrows.cursor()
    cursor.execute(_products_sql(connection.vendor, len(ordered)), ordered)
    rows = cursor.fetchall()
    products = (_product.build(row) for row in rows)
    return {p.sku: p for p in products if p is not None}


_stats = Shape(MemberStats)


@cache
def _stats_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    sql = (
        f"SELECT {_stats.columns('s')} FROM {q(MemberStats._meta.db_table)} s"  # noqa: S608
        f" WHERE s.{q('member_id')} = %s"
    )
    return sql + " FOR UPDATE" if connection.features.has_select_for_update else sql


def stats_for_update(member_id: int) -> MemberStats | None:
    """The member's aggregates, locked (inside the sale's transaction), or None."""
    cursor = sqlrows.cursor()
    cursor.execute(_stats_sql(connection.vendor), [member_id])
    row = cursor.fetchone()
    return _stats.build(row) if row is not None else None


@cache
def _sequence(model: type[Any]) -> str:
    """The PostgreSQL sequence behind a model's id (an identity column)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_serial_sequence(%s, %s)",
            [connection.ops.quote_name(model._meta.db_table), model._meta.pk.column],
        )
        return cursor.fetchone()[0]


@cache
def _account_and_stats_sql(vendor: str, lines: int) -> str:
    q = connection.ops.quote_name
    account, stats = _shapes()[2:]
    ids = ""
    if lines:
        # The sale's ids drawn under the member's lock, so its rows can be sent without
        # waiting for each id (``sqlrows.deferred``); in lock order, like the ids they replace.
        sale, line, entry = (_sequence(m) for m in (Sale, SaleLine, PointsEntry))
        ids = (
            f", nextval('{sale}'), ARRAY(SELECT nextval('{line}')"  # noqa: S608 — catalog names
            f" FROM generate_series(1, {int(lines)})), nextval('{entry}')"
        )
    sql = (
        f"SELECT {account.columns('a')}, {stats.columns('s')}{ids}"  # noqa: S608
        f" FROM {q(PointsAccount._meta.db_table)} a"
        f" JOIN {q(MemberStats._meta.db_table)} s ON s.{q('member_id')} = a.{q('member_id')}"
        f" WHERE a.{q('member_id')} = %s"
    )
    # Both rows locked: a sale that waited here for another till's sale to the same member
    # then reads both rows as that sale left them (PostgreSQL re-reads locked rows only).
    return sql + " FOR UPDATE" if connection.features.has_select_for_update else sql


@dataclass(frozen=True)
class SaleIds:
    sale: int
    lines: list[int]
    entry: int


def lock_account_and_stats(
    member_id: int, *, draw_for_lines: int = 0
) -> tuple[PointsAccount, MemberStats | None, SaleIds | None]:
    """The member's points account and aggregates, locked in that order, in one statement
    (inside the sale's transaction). A member's first sale, with no aggregates yet, takes the
    two statements of ``lock_account`` and ``stats_for_update``.

    With ``draw_for_lines`` on PostgreSQL the same statement draws the ids of the sale, its
    lines and its points entry."""
    account_shape, stats_shape = _shapes()[2:]
    lines = draw_for_lines if connection.vendor == "postgresql" else 0
    cursor = sqlrows.cursor()
    cursor.execute(_account_and_stats_sql(connection.vendor, lines), [member_id])
    row = cursor.fetchone()
    if row is None:
        return lock_account(member_id), stats_for_update(member_id), None
    account = account_shape.build(row)
    assert account is not None
    stats = stats_shape.build(row, account_shape.width)
    ids = SaleIds(row[-3], list(row[-2]), row[-1]) if lines else None
    return account, stats, ids

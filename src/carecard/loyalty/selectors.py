"""Reads of members' points: the summary a clerk sees (P-6), and the ledger check (P-2)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

from carecard.loyalty.models import PointsAccount, PointsLot


@dataclass(frozen=True)
class PointsSummary:
    balance: int  # everything the member holds, pending included, less any debt
    available: int  # spendable now
    pending: int  # earned but still inside the return window
    expiring: int  # available points whose lot expires within ``soon_days``
    expiring_on: dt.date | None  # the first such expiry date
    debt: int
    lifetime_earned: int
    lifetime_spent: int
    lifetime_expired: int


def points_summary(
    member_id: int, *, at: dt.datetime | None = None, soon_days: int = 30
) -> PointsSummary:
    """The member's points as pending / available / expiring soon / spent / expired."""
    at = at or timezone.now()
    today = timezone.localdate(at)
    account = PointsAccount.objects.filter(pk=member_id).first()
    if account is None:
        return PointsSummary(0, 0, 0, 0, None, 0, 0, 0, 0)
    lots = PointsLot.objects.filter(member_id=member_id, remaining__gt=0).filter(
        Q(expires_on__isnull=True) | Q(expires_on__gte=today)
    )
    pending = available_lots = expiring = 0
    expiring_on = None
    horizon = today + dt.timedelta(days=soon_days)
    for remaining, available_at, expires_on in lots.values_list(
        "remaining", "available_at", "expires_on"
    ):
        if available_at > at:
            pending += remaining
            continue
        available_lots += remaining
        if expires_on is not None and expires_on <= horizon:
            expiring += remaining
            expiring_on = min(expiring_on or expires_on, expires_on)
    return PointsSummary(
        balance=account.balance,
        available=max(0, available_lots - account.debt),
        pending=pending,
        expiring=expiring,
        expiring_on=expiring_on,
        debt=account.debt,
        lifetime_earned=account.lifetime_earned,
        lifetime_spent=account.lifetime_spent,
        lifetime_expired=account.lifetime_expired,
    )


@dataclass(frozen=True)
class LedgerMismatch:
    member_id: int
    cached: int | None  # the account's balance (None: entries without an account)
    entries: int
    lots: int
    debt: int


def verify_points(member_ids: list[int] | None = None) -> list[LedgerMismatch]:
    """Members whose cached balance differs from the sum of their entries, or from the sum of
    their open lots less their debt (P-2). Set-based: one statement for the whole chain."""
    where, params = "", []
    if member_ids is not None:
        if not member_ids:
            return []
        where = "WHERE ids.member_id IN (" + ", ".join(["%s"] * len(member_ids)) + ")"
        params = list(member_ids)
    sql = f"""
        WITH e AS (SELECT member_id, SUM(points) AS s FROM loyalty_pointsentry GROUP BY member_id),
             l AS (SELECT member_id, SUM(remaining) AS s FROM loyalty_pointslot GROUP BY member_id),
             ids AS (SELECT member_id FROM loyalty_pointsaccount
                     UNION SELECT member_id FROM e UNION SELECT member_id FROM l)
        SELECT ids.member_id, a.balance, COALESCE(e.s, 0), COALESCE(l.s, 0), COALESCE(a.debt, 0)
        FROM ids
        LEFT JOIN loyalty_pointsaccount a ON a.member_id = ids.member_id
        LEFT JOIN e ON e.member_id = ids.member_id
        LEFT JOIN l ON l.member_id = ids.member_id
        {where}
    """  # noqa: S608 — placeholders only
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        LedgerMismatch(member_id=m, cached=c, entries=int(e), lots=int(lots), debt=int(d))
        for m, c, e, lots, d in rows
        if c is None or c != e or c != lots - d
    ]


def points_liability(at: dt.datetime) -> int:
    """Points outstanding at a moment (P-8): every entry up to then, summed."""
    from carecard.loyalty.models import PointsEntry

    return PointsEntry.objects.filter(at__lte=at).aggregate(s=Sum("points"))["s"] or 0

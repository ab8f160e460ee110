"""The one place the loyalty app takes row locks (ARCHITECTURE.md: lock, re-read, check, write).

A member's points account row is the lock for everything about the member's points: entries,
lots and the cached balance change only while it is held. Several members are locked in
primary-key order so two transactions can never wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def _locked(ids: list[int]) -> list[PointsAccount]:
    return list(
        PointsAccount.objects.filter(pk__in=ids).order_by("pk").select_for_update(of=("self",))
    )


def lock_account(member_id: int) -> PointsAccount:
    return lock_accounts([member_id])[member_id]

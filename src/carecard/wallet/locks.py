"""The one place the wallet app takes row locks (ARCHITECTURE.md: lock, re-read, check, write).

A member's wallet account row is the lock for everything about the member's stored value:
entries and the cached balance and parts change only while it is held. Several members are
locked in primary-key order so two transactions can never wait on each other.

A checkout that pays with stored value holds the member's points account too: it locks the
points account first, then the wallet (``checkout → loyalty, wallet``), and the wallet's own
services (top-up, refund, adjustment) lock only the wallet, so no two orders ever meet.
"""

from __future__ import annotations

from collections.abc import Iterable

from carecard.wallet.models import WalletAccount


def lock_wallets(member_ids: Iterable[int]) -> dict[int, WalletAccount]:
    """Lock the members' wallet accounts in member-id order, creating missing ones first. Call
    inside a transaction."""
    ids = sorted(set(member_ids))
    locked = {a.pk: a for a in _locked(ids)}
    missing = [WalletAccount(member_id=i) for i in ids if i not in locked]
    if missing:
        # A concurrent first top-up may create the same account: the conflict is ignored and the
        # lock below then waits for that transaction.
        WalletAccount.objects.bulk_create(missing, ignore_conflicts=True)
        locked = {a.pk: a for a in _locked(ids)}
    return locked


def _locked(ids: list[int]) -> list[WalletAccount]:
    return list(
        WalletAccount.objects.filter(pk__in=ids).order_by("pk").select_for_update(of=("self",))
    )


def lock_wallet(member_id: int) -> WalletAccount:
    return lock_wallets([member_id])[member_id]

"""Member merge (M-2) for stored value: the entries have moved to the survivor; the two
accounts are added together (a merge may leave the balance above the cap: it is money both
cards already held)."""

from __future__ import annotations

from typing import Any

from carecard.wallet.locks import lock_wallets

_SUMS = (
    "balance",
    "principal",
    "bonus",
    "lifetime_topup",
    "lifetime_bonus",
    "lifetime_paid",
    "lifetime_refunded",
)


def merge_wallets(*, survivor: Any, absorbed: Any) -> None:
    accounts = lock_wallets([survivor.pk, absorbed.pk])
    mine, theirs = accounts[survivor.pk], accounts[absorbed.pk]
    for name in _SUMS:
        setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
    mine.save()
    theirs.delete()

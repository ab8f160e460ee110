"""Member merge (M-2) for purchase aggregates: the sales have moved to the survivor; the two
members' aggregates are added together month by month."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from carecard.checkout.models import MemberStats


def merge_stats(*, survivor: Any, absorbed: Any) -> None:
    stats = {
        s.member_id: s
        for s in MemberStats.objects.select_for_update()
        .filter(member_id__in=[survivor.pk, absorbed.pk])
        .order_by("pk")
    }
    theirs = stats.get(absorbed.pk)
    if theirs is None:
        return
    mine = stats.get(survivor.pk)
    if mine is None:
        MemberStats.objects.filter(member_id=absorbed.pk).update(member_id=survivor.pk)
        return
    for month, (visits, spend) in theirs.months.items():
        v, s = mine.months.get(month, [0, "0.00"])
        mine.months[month] = [v + visits, str(Decimal(s) + Decimal(spend))]
    mine.months = {k: mine.months[k] for k in sorted(mine.months)[-13:]}
    mine.visits += theirs.visits
    mine.spend += theirs.spend
    mine.visits_12m += theirs.visits_12m
    mine.spend_12m += theirs.spend_12m
    firsts = [d for d in (mine.first_purchase_at, theirs.first_purchase_at) if d]
    mine.first_purchase_at = min(firsts) if firsts else None
    if theirs.last_purchase_at and (
        mine.last_purchase_at is None or theirs.last_purchase_at > mine.last_purchase_at
    ):
        mine.last_purchase_at, mine.last_store_id = theirs.last_purchase_at, theirs.last_store_id
    mine.save()
    theirs.delete()

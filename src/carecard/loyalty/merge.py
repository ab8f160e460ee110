"""Member merge (M-2) for the loyalty app: the absorbed member's entries and lots have moved to
the survivor; the accounts, tier and ladder progress are combined here."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum

from carecard.loyalty.locks import lock_accounts
from carecard.loyalty.models import (
    LadderProgress,
    MemberTier,
    PointsEntry,
)


def merge_loyalty(*, survivor: Any, absorbed: Any) -> None:
    """Recompute the survivor's points account from the (now combined) entries, add the
    absorbed debt, keep the higher tier and the further ladder progress."""
    accounts = lock_accounts([survivor.pk, absorbed.pk])
    mine, theirs = accounts[survivor.pk], accounts[absorbed.pk]
    entries = PointsEntry.objects.filter(member_id=survivor.pk)
    mine.balance = entries.aggregate(s=Sum("points"))["s"] or 0
    mine.debt += theirs.debt
    mine.lifetime_earned += theirs.lifetime_earned
    mine.lifetime_spent += theirs.lifetime_spent
    mine.lifetime_expired += theirs.lifetime_expired
    mine.save()
    theirs.delete()
    tiers = {
        t.member_id: t
        for t in MemberTier.objects.select_related("tier").filter(
            member_id__in=[survivor.pk, absorbed.pk]
        )
    }
    if absorbed.pk in tiers:
        theirs_tier = tiers[absorbed.pk]
        mine_tier = tiers.get(survivor.pk)
        if mine_tier is None or theirs_tier.tier.rank > mine_tier.tier.rank:
            MemberTier.objects.filter(member_id=survivor.pk).delete()
            MemberTier.objects.filter(member_id=absorbed.pk).update(member_id=survivor.pk)
        else:
            theirs_tier.delete()
    ladders = {
        p.member_id: p
        for p in LadderProgress.objects.filter(member_id__in=[survivor.pk, absorbed.pk])
    }
    if absorbed.pk in ladders:
        if (
            survivor.pk not in ladders
            or ladders[absorbed.pk].cycle_points > ladders[survivor.pk].cycle_points
        ):
            LadderProgress.objects.filter(member_id=survivor.pk).delete()
            LadderProgress.objects.filter(member_id=absorbed.pk).update(member_id=survivor.pk)
        else:
            ladders[absorbed.pk].delete()

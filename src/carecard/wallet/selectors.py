"""Reads of members' stored value: the policy and bonus tiers in force, the summary a clerk
sees, a member's entries, the ledger check (S-1) and the liability at a date (P-8)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import BigIntegerField, Case, F, Q, Sum, Value, When
from django.db.models.functions import Cast, Round
from django.utils import timezone

from carecard.core.money import ZERO
from carecard.members.models import Member
from carecard.wallet import rules
from carecard.wallet.models import EntryKind, TopupRule, WalletAccount, WalletEntry, WalletPolicy


def wallet_policy() -> WalletPolicy:
    """The chain's stored-value settings; the defaults (unsaved) until HQ saves a row."""
    return WalletPolicy.objects.order_by("pk").first() or WalletPolicy()


def topup_tiers(on: dt.date) -> list[rules.BonusTier]:
    """The bonus tiers in force on the business date ``on``."""
    rows = (
        TopupRule.objects.filter(active=True)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=on))
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=on))
        .order_by("min_amount", "pk")
    )
    return [
        rules.BonusTier(min_amount=r.min_amount, bonus=r.bonus, rule_id=r.pk, name=r.name)
        for r in rows
    ]


@dataclass(frozen=True)
class Holder:
    exists: bool
    status: str
    real_named: bool  # an ID number is on file (S-2 real name)


def wallet_holder(member_id: int) -> Holder:
    """Whether the member exists and is registered by real name, without decrypting the ID
    number (an empty ID number is stored as an empty string)."""
    row = (
        Member.objects.filter(pk=member_id)
        .annotate(real=Case(When(id_number="", then=Value(False)), default=Value(True)))
        .values_list("status", "real")
        .first()
    )
    if row is None:
        return Holder(exists=False, status="", real_named=False)
    return Holder(exists=True, status=row[0], real_named=bool(row[1]))


def balance_limit_for(policy: WalletPolicy, *, real_named: bool) -> Decimal:
    return rules.balance_limit(
        cap=policy.balance_cap,
        unnamed_cap=policy.unnamed_cap,
        real_name_required=policy.real_name_required,
        real_named=real_named,
    )


def used_bonus_since_refund(member_id: int) -> Decimal:
    """Bonus the member spent (payments less returns) since the last refund closed the wallet:
    what the ``remaining_less_used_bonus`` refund rule deducts."""
    last_close = (
        WalletEntry.objects.filter(
            member_id=member_id, kind__in=[EntryKind.REFUND, EntryKind.FORFEIT]
        )
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    parts = WalletEntry.objects.filter(
        member_id=member_id, kind__in=[EntryKind.PAY, EntryKind.PAY_REVERSAL]
    )
    if last_close is not None:
        parts = parts.filter(pk__gt=last_close)
    return -sum(parts.values_list("bonus", flat=True), ZERO)


@dataclass(frozen=True)
class WalletSummary:
    balance: Decimal  # principal + bonus
    principal: Decimal
    bonus: Decimal
    real_named: bool
    limit: Decimal  # the most the balance may hold after a top-up
    max_topup: Decimal  # the largest payment a top-up may take now, bonus counted
    refundable: Decimal  # the cash a refund would pay now under the policy
    lifetime_topup: Decimal
    lifetime_bonus: Decimal
    lifetime_paid: Decimal
    lifetime_refunded: Decimal


def wallet_summary(member_id: int, *, at: dt.datetime | None = None) -> WalletSummary:
    """The member's stored value as the counter shows it, with what a top-up or refund could
    do right now."""
    at = at or timezone.now()
    policy = wallet_policy()
    account = WalletAccount.objects.filter(pk=member_id).first() or WalletAccount(
        member_id=member_id
    )
    real_named = wallet_holder(member_id).real_named
    limit = balance_limit_for(policy, real_named=real_named)
    tiers = topup_tiers(timezone.localdate(at))
    refundable = ZERO
    if policy.refund_rule != "none" and account.balance > 0:
        refundable = rules.refund_due(
            principal=account.principal,
            bonus=account.bonus,
            used_bonus=used_bonus_since_refund(member_id),
            rule=policy.refund_rule,
            bonus_refundable=policy.bonus_refundable,
        ).total
    return WalletSummary(
        balance=account.balance,
        principal=account.principal,
        bonus=account.bonus,
        real_named=real_named,
        limit=limit,
        max_topup=rules.max_topup(limit - account.balance, tiers) if policy.enabled else ZERO,
        refundable=refundable,
        lifetime_topup=account.lifetime_topup,
        lifetime_bonus=account.lifetime_bonus,
        lifetime_paid=account.lifetime_paid,
        lifetime_refunded=account.lifetime_refunded,
    )


def wallet_entries(member_id: int, *, limit: int = 50) -> list[WalletEntry]:
    """The member's latest entries, newest first, with the store and staff shown beside them."""
    return list(
        WalletEntry.objects.filter(member_id=member_id)
        .select_related("store", "actor")
        .order_by("-at", "-pk")[:limit]
    )


def wallet_payment(member_id: int, reference: str) -> WalletEntry | None:
    """The stored-value payment booked under ``reference`` (``sale:123``): what a return
    reverses."""
    return (
        WalletEntry.objects.filter(member_id=member_id, kind=EntryKind.PAY, reference=reference)
        .order_by("pk")
        .first()
    )


@dataclass(frozen=True)
class WalletMismatch:
    member_id: int
    cached: Decimal | None  # the account's balance (None: entries without an account)
    cached_principal: Decimal | None
    cached_bonus: Decimal | None
    entries: Decimal  # sum of entry amounts
    entries_principal: Decimal
    entries_bonus: Decimal
    last_balance_after: Decimal | None  # the newest entry's running balance


def _money(cents: int | None) -> Decimal | None:
    return None if cents is None else Decimal(int(cents)).scaleb(-2)


def verify_wallets(member_ids: list[int] | None = None) -> list[WalletMismatch]:
    """Members whose cached balance or parts differ from the sums of their entries, whose
    balance is not principal + bonus, or whose newest entry's running balance is not the
    cached one (S-1). Set-based: one statement for the whole chain.

    Sums are taken in integer cents: SQLite keeps decimals as floats and would otherwise add
    rounding noise to a long ledger.
    """
    where, params = "", []
    if member_ids is not None:
        if not member_ids:
            return []
        where = "WHERE member_id IN (" + ", ".join(["%s"] * len(member_ids)) + ")"
        params = list(member_ids) * 2

    def cents(column: str) -> str:
        return f"CAST(ROUND({column} * 100) AS BIGINT)"

    sql = f"""
        WITH e AS (SELECT member_id, SUM({cents("amount")}) AS a, SUM({cents("principal")}) AS p,
                          SUM({cents("bonus")}) AS b, MAX(id) AS last_id
                   FROM wallet_walletentry {where} GROUP BY member_id),
             acc AS (SELECT member_id, balance, principal, bonus
                     FROM wallet_walletaccount {where}),
             ids AS (SELECT member_id FROM acc UNION SELECT member_id FROM e)
        SELECT ids.member_id, {cents("acc.balance")}, {cents("acc.principal")},
               {cents("acc.bonus")}, COALESCE(e.a, 0), COALESCE(e.p, 0), COALESCE(e.b, 0),
               {cents("last.balance_after")}, mm.survivor_id IS NOT NULL
        FROM ids
        LEFT JOIN acc ON acc.member_id = ids.member_id
        LEFT JOIN e ON e.member_id = ids.member_id
        LEFT JOIN wallet_walletentry last ON last.id = e.last_id
        LEFT JOIN (SELECT DISTINCT survivor_id FROM members_membermerge) mm
               ON mm.survivor_id = ids.member_id
    """  # noqa: S608 — placeholders only
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = []
    for member_id, bal, pri, bon, e_a, e_p, e_b, last, merged in rows:
        # A merge survivor's entries interleave two members' running balances, so its newest
        # entry need not show the combined balance; the sums still must agree.
        consistent = (
            bal is not None
            and bal == e_a
            and pri == e_p
            and bon == e_b
            and bal == pri + bon
            and (last is None or last == bal or bool(merged))
        )
        if not consistent:
            out.append(
                WalletMismatch(
                    member_id=member_id,
                    cached=_money(bal),
                    cached_principal=_money(pri),
                    cached_bonus=_money(bon),
                    entries=_money(e_a) or ZERO,
                    entries_principal=_money(e_p) or ZERO,
                    entries_bonus=_money(e_b) or ZERO,
                    last_balance_after=_money(last),
                )
            )
    return out


@dataclass(frozen=True)
class WalletLiability:
    total: Decimal  # stored value the chain owes its members
    principal: Decimal  # of which money members paid in
    bonus: Decimal  # of which bonus the chain granted (a promotional liability)
    holders: int  # members holding a positive balance


def _cents_sum(field: str) -> Sum:
    return Sum(Cast(Round(F(field) * 100), BigIntegerField()))


def wallet_liability(at: dt.datetime | dt.date) -> WalletLiability:
    """Stored value outstanding at a moment (P-8): every entry up to then, summed. A date means
    the end of that business day (Asia/Shanghai)."""
    if isinstance(at, dt.datetime):
        entries = WalletEntry.objects.filter(at__lte=at)
    else:
        next_day = dt.datetime.combine(at + dt.timedelta(days=1), dt.time.min)
        entries = WalletEntry.objects.filter(at__lt=timezone.make_aware(next_day))
    sums = entries.aggregate(
        a=_cents_sum("amount"), p=_cents_sum("principal"), b=_cents_sum("bonus")
    )
    holders = entries.values("member_id").annotate(s=_cents_sum("amount")).filter(s__gt=0).count()
    return WalletLiability(
        total=_money(sums["a"]) or ZERO,
        principal=_money(sums["p"]) or ZERO,
        bonus=_money(sums["b"]) or ZERO,
        holders=holders,
    )

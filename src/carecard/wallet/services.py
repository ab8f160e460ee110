"""Writes to the stored-value ledger (S-1, S-2, C-4a, C-6).

``wallet_topup``, ``wallet_refund`` and ``wallet_adjust`` are outermost business operations:
each locks the member's wallet itself inside ``atomic(durable=True)``. ``wallet_pay`` and
``wallet_pay_reverse`` run inside the checkout's transaction and take the member's **locked**
account (``wallet.locks.lock_wallet``). Each change is one or more entries; the account's
balance, principal and bonus move with them in the same transaction, so
``balance == principal + bonus == sum(entries)`` holds after every call.

Rules (S-2, ``WalletPolicy``):

- **Limits.** After a top-up or a manual credit the balance may not exceed the named-card cap
  (5 000 CNY by default); a member with no ID number on file is held to the unnamed limit
  (1 000 CNY) while the policy requires real name. The bonus counts: the whole credit must fit.
  A refused top-up names the field ``amount``, the reason and the largest payment that fits.
  A **return never checks the cap**: it gives back money the member already held (a balance
  the cap allowed when it was paid in), and refusing it would leave the return nowhere to go.
  So a balance may sit above the cap after a return; no top-up is accepted until it is below.
- **Spending order.** A payment takes principal and bonus in proportion to what the member
  holds (``rules.split_payment``); a return puts back the proportion of the payment it
  reverses (``rules.split_reversal``), never more than was paid less earlier returns.
- **Refund.** A cash refund empties the wallet: it pays what ``WalletPolicy.refund_rule``
  allows (by default the remaining principal; bonus only when ``bonus_refundable``) and
  forfeits the rest as a separate ``forfeit`` entry, so finance sees breakage apart from cash.

Permissions (existing codes in ``core.roles``): a refund pays cash out and closes the
member's stored value at the counter, like the card operations, so it needs ``card.manage``;
a manual adjustment creates or removes money outside any sale, a head-office decision, so it
needs ``settings.manage``. Both need a reason; the entry records actor, reason and the
computation in ``detail`` and is their audit record (``core.models.AuditAction`` has no
stored-value action).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.core.audit import AuditAction, audit
from carecard.core.errors import (
    Conflict,
    DomainError,
    FieldError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from carecard.core.money import ZERO, is_money
from carecard.core.roles import Perm
from carecard.members.models import MemberStatus
from carecard.wallet import rules
from carecard.wallet.locks import lock_wallet
from carecard.wallet.models import (
    EntryKind,
    RefundRule,
    TopupTender,
    WalletAccount,
    WalletEntry,
    WalletPolicy,
)
from carecard.wallet.selectors import (
    Holder,
    balance_limit_for,
    topup_tiers,
    used_bonus_since_refund,
    wallet_holder,
    wallet_policy,
)

MAX_REFERENCE = 64
MAX_REASON = 200
_LIVE = frozenset({MemberStatus.ACTIVE, MemberStatus.PENDING})


class InsufficientBalance(DomainError):
    def __init__(self, *, wanted: Decimal, available: Decimal, field: str = "stored_value") -> None:
        values = {"w": wanted, "a": available}
        super().__init__(
            code="insufficient_balance",
            message=_("储值余额不足：需要 %(w)s 元，可用 %(a)s 元") % values,
            errors=[FieldError(field, "insufficient", _("储值余额不足，可用 %(a)s 元") % values)],
            status=422,
            detail={"wanted": str(wanted), "available": str(available)},
        )


class LimitExceeded(DomainError):
    """A credit would take the balance over the member's limit (S-2). ``code`` says which rule:
    ``balance_cap_exceeded`` (the named-card cap) or ``real_name_required`` (the unnamed limit
    of a member without an ID number on file). ``detail.max_amount`` is the largest payment
    that still fits, bonus counted."""

    def __init__(
        self,
        *,
        code: str,
        message: str,
        limit: Decimal,
        balance: Decimal,
        credit: Decimal,
        max_amount: Decimal,
    ) -> None:
        super().__init__(
            code=code,
            message=message,
            errors=[FieldError("amount", code, message)],
            status=422,
            detail={
                "limit": str(limit),
                "balance": str(balance),
                "credit": str(credit),
                "max_amount": str(max_amount),
            },
        )


@dataclass(frozen=True)
class Topup:
    entry: WalletEntry  # the principal paid in
    bonus_entry: WalletEntry | None  # the bonus granted with it, if a tier applied
    balance: Decimal  # the balance now (on a replay: now, not at the first top-up)
    replayed: bool  # the reference was already booked: nothing new was written


@dataclass(frozen=True)
class Refund:
    cash: Decimal  # what is paid back to the member
    forfeited: Decimal  # what the policy keeps (bonus, used bonus deducted)
    entry: WalletEntry | None  # the refund entry (None when nothing is paid)
    forfeit_entry: WalletEntry | None


# --------------------------------------------------------------------------- helpers


def _amount(value: Any, *, field: str = "amount", signed: bool = False) -> Decimal:
    """A positive (or, ``signed``, non-zero) amount in whole cents; ``float`` is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not is_money(value) or (value <= 0 if not signed else value == 0):
        message = _("金额应为非零的两位小数") if signed else _("金额应为大于 0 的两位小数")
        raise ValidationFailed([FieldError(field, "invalid", message)])
    return Decimal(value).quantize(Decimal("0.01"))


def _reference(value: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_REFERENCE:
        raise ValidationFailed([FieldError("reference", "too_long", _("单据号不能超过 64 个字符"))])
    return value


def _tender(value: str) -> str:
    if value not in TopupTender.values:
        raise ValidationFailed(
            [FieldError("tender", "invalid", _("充值只能用现金、微信、支付宝或银行卡"))]
        )
    return value


def _reason(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationFailed([FieldError("reason", "required", _("请填写原因"))])
    if len(value) > MAX_REASON:
        raise ValidationFailed([FieldError("reason", "too_long", _("原因不能超过 200 个字符"))])
    return value


def _user(actor: Any) -> Any:
    """The staff user to record on an entry (a POS terminal is not a user)."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _holder(member_id: int, *, live: bool) -> Holder:
    holder = wallet_holder(member_id)
    if not holder.exists:
        raise NotFound("member", _("会员不存在"))
    if live and holder.status not in _LIVE:
        raise DomainError(
            code="member_inactive",
            message=_("该会员已注销或已合并，不能充值"),
            errors=[FieldError("member", "inactive", _("会员状态不可用"))],
            status=422,
        )
    return holder


def _entry(
    account: WalletAccount, *, kind: str, split: rules.Split, at: dt.datetime, **fields: Any
) -> WalletEntry:
    """Book ``split`` (signed) on the account and write its entry."""
    account.principal += split.principal
    account.bonus += split.bonus
    account.balance = account.principal + account.bonus
    return WalletEntry.objects.create(
        member_id=account.pk,
        kind=kind,
        amount=split.total,
        principal=split.principal,
        bonus=split.bonus,
        balance_after=account.balance,
        at=at,
        **fields,
    )


def _save(account: WalletAccount, *fields: str) -> None:
    account.save(update_fields=["balance", "principal", "bonus", "updated_at", *fields])


def _check_limit(
    *,
    account: WalletAccount,
    policy: WalletPolicy,
    holder: Holder,
    amount: Decimal,
    bonus: Decimal,
    tiers: list[rules.BonusTier],
) -> None:
    """Refuse a credit of ``amount + bonus`` that would take the balance over the member's
    limit, naming the largest payment that still fits (bonus counted)."""
    credit = amount + bonus
    limit = balance_limit_for(policy, real_named=holder.real_named)
    if account.balance + credit <= limit:
        return
    room = limit - account.balance
    max_amount = rules.max_topup(room, tiers)
    values = {
        "after": account.balance + credit,
        "limit": limit,
        "max": max_amount,
        "bonus": bonus,
    }
    with_bonus = _("（含赠送 %(bonus)s 元）") % values if bonus else ""
    if limit < policy.balance_cap:
        code = "real_name_required"
        message = _(
            "未实名会员储值余额不能超过 %(limit)s 元：充值后余额 %(after)s 元%(b)s。"
            "请先登记身份证号，或本次最多充值 %(max)s 元"
        ) % {**values, "b": with_bonus}
    else:
        code = "balance_cap_exceeded"
        message = _(
            "储值余额不能超过 %(limit)s 元：充值后余额 %(after)s 元%(b)s，本次最多充值 %(max)s 元"
        ) % {**values, "b": with_bonus}
    raise LimitExceeded(
        code=code,
        message=message,
        limit=limit,
        balance=account.balance,
        credit=credit,
        max_amount=max_amount,
    )


# --------------------------------------------------------------------------- top-up


def wallet_topup(
    *,
    member_id: int,
    amount: Decimal,
    tender: str,
    at: dt.datetime | None = None,
    store_id: int | None = None,
    actor: Any = None,
    reference: str = "",
) -> Topup:
    """Pay ``amount`` into the member's wallet (S-1) and add the bonus of the best tier it
    reaches. Locks the wallet itself (``atomic(durable=True)``).

    Refused, with nothing written: a disabled wallet (``wallet_disabled``), an inactive member,
    an amount that is not positive whole cents, a tender other than cash / WeChat / Alipay /
    bank card, and a credit (bonus included) over the member's limit
    (``balance_cap_exceeded`` / ``real_name_required`` on field ``amount``).

    A retry with a ``reference`` already booked for this member returns the first top-up
    (``replayed``); the same reference with another amount or tender is a 409.
    """
    amount = _amount(amount)
    tender = _tender(tender)
    reference = _reference(reference)
    at = at or timezone.now()
    policy = wallet_policy()
    with transaction.atomic(durable=True):
        holder = _holder(member_id, live=True)
        account = lock_wallet(member_id)
        if reference:
            first = WalletEntry.objects.filter(
                member_id=member_id, kind=EntryKind.TOPUP, reference=reference
            ).first()
            if first is not None:
                if first.amount != amount or first.tender != tender:
                    raise Conflict(
                        "topup_reference_reused",
                        _("该单据号已用于另一笔充值"),
                        errors=[FieldError("reference", "reused", _("单据号重复"))],
                    )
                bonus_entry = WalletEntry.objects.filter(
                    member_id=member_id, kind=EntryKind.BONUS, reference=reference
                ).first()
                return Topup(first, bonus_entry, account.balance, replayed=True)
        if not policy.enabled:
            raise DomainError(code="wallet_disabled", message=_("未开通储值业务"), status=422)
        tiers = topup_tiers(timezone.localdate(at))
        tier = rules.best_tier(amount, tiers)
        bonus = tier.bonus if tier else ZERO
        _check_limit(
            account=account, policy=policy, holder=holder, amount=amount, bonus=bonus, tiers=tiers
        )
        common = {"at": at, "store_id": store_id, "actor": _user(actor), "reference": reference}
        entry = _entry(
            account,
            kind=EntryKind.TOPUP,
            split=rules.Split(amount, ZERO),
            tender=tender,
            **common,
        )
        bonus_entry = None
        if tier is not None:
            bonus_entry = _entry(
                account,
                kind=EntryKind.BONUS,
                split=rules.Split(ZERO, bonus),
                detail={
                    "rule_id": tier.rule_id,
                    "rule": tier.name,
                    "min_amount": str(tier.min_amount),
                    "bonus": str(tier.bonus),
                    "topup_entry": entry.pk,
                },
                **common,
            )
        account.lifetime_topup += amount
        account.lifetime_bonus += bonus
        _save(account, "lifetime_topup", "lifetime_bonus")
    return Topup(entry, bonus_entry, account.balance, replayed=False)


# --------------------------------------------------------------------------- checkout


def wallet_pay(
    *,
    account: WalletAccount,
    amount: Decimal,
    at: dt.datetime,
    reference: str = "",
    store_id: int | None = None,
    actor: Any = None,
) -> WalletEntry:
    """Pay ``amount`` of a sale with stored value (C-4a; needs ``account`` locked, inside the
    checkout's transaction). Principal and bonus are taken in proportion to what the member
    holds, to the cent. More than the balance is ``insufficient_balance`` on field
    ``stored_value`` (with the available amount) and nothing is written."""
    amount = _amount(amount, field="stored_value")
    if amount > account.balance:
        raise InsufficientBalance(wanted=amount, available=account.balance)
    split = rules.split_payment(amount, principal=account.principal, bonus=account.bonus)
    entry = _entry(
        account,
        kind=EntryKind.PAY,
        split=-split,
        at=at,
        store_id=store_id,
        actor=_user(actor),
        reference=_reference(reference),
        detail={"order": "pro_rata"},
    )
    account.lifetime_paid += amount
    _save(account, "lifetime_paid")
    return entry


def wallet_pay_reverse(
    *,
    account: WalletAccount,
    paid_entry: WalletEntry,
    amount: Decimal,
    at: dt.datetime,
    reference: str = "",
    store_id: int | None = None,
    actor: Any = None,
) -> WalletEntry:
    """Put back ``amount`` of a stored-value payment (a return, C-6; needs ``account`` locked).

    The money returns split like the payment (running pro rata, so a payment returned in full
    gives back exactly its own principal and bonus). At most what the payment took less earlier
    returns (``exceeds_paid``). The cap is not checked: a return restores money the member held.
    """
    amount = _amount(amount)
    if paid_entry.member_id != account.pk or paid_entry.kind != EntryKind.PAY:
        raise ValidationFailed([FieldError("entry", "invalid", _("只能退回该会员的储值消费流水"))])
    before = list(
        WalletEntry.objects.filter(
            member_id=account.pk, corrects=paid_entry, kind=EntryKind.PAY_REVERSAL
        ).values_list("principal", "bonus")
    )
    reversed_before = rules.Split(
        sum((p for p, _b in before), ZERO), sum((b for _p, b in before), ZERO)
    )
    paid = -rules.Split(paid_entry.principal, paid_entry.bonus)
    left = paid.total - reversed_before.total
    if amount > left:
        raise ValidationFailed(
            [
                FieldError(
                    "amount",
                    "exceeds_paid",
                    _("退回金额不能超过该笔储值支付（%(p)s 元，已退回 %(r)s 元）")
                    % {"p": paid.total, "r": reversed_before.total},
                )
            ]
        )
    split = rules.split_reversal(amount, paid=paid, reversed_before=reversed_before)
    entry = _entry(
        account,
        kind=EntryKind.PAY_REVERSAL,
        split=split,
        at=at,
        store_id=store_id,
        actor=_user(actor),
        reference=_reference(reference),
        corrects=paid_entry,
    )
    account.lifetime_paid -= amount
    _save(account, "lifetime_paid")
    return entry


# --------------------------------------------------------------------------- refund, adjust


def wallet_refund(
    *,
    member_id: int,
    actor: Any,
    reason: str,
    at: dt.datetime | None = None,
    store_id: int | None = None,
    tender: str = TopupTender.CASH,
) -> Refund:
    """Refund the member's stored value in cash and close it (退储值). Needs ``card.manage`` and
    a reason; locks the wallet itself (``atomic(durable=True)``).

    Pays what ``WalletPolicy.refund_rule`` allows (``rules.refund_due``: by default the remaining
    principal, the bonus only when ``bonus_refundable``, optionally less the bonus already used)
    as a ``refund`` entry, and forfeits the rest as a ``forfeit`` entry: the balance ends at 0.
    A policy of ``none`` refuses (``not_refundable``); an empty wallet is ``nothing_to_refund``.
    """
    if actor is None or not actor.can(Perm.CARD_MANAGE):
        raise PermissionDenied(_("没有办理储值退款的权限"))
    reason = _reason(reason)
    tender = _tender(tender)
    at = at or timezone.now()
    policy = wallet_policy()
    if policy.refund_rule == RefundRule.NONE:
        raise DomainError(code="not_refundable", message=_("储值余额按规定不可退款"), status=422)
    with transaction.atomic(durable=True):
        _holder(member_id, live=False)
        account = lock_wallet(member_id)
        if account.balance <= 0:
            raise DomainError(code="nothing_to_refund", message=_("没有可退的储值余额"), status=422)
        used_bonus = used_bonus_since_refund(member_id)
        due = rules.refund_due(
            principal=account.principal,
            bonus=account.bonus,
            used_bonus=used_bonus,
            rule=policy.refund_rule,
            bonus_refundable=policy.bonus_refundable,
        )
        kept = rules.Split(account.principal - due.principal, account.bonus - due.bonus)
        detail = {
            "rule": policy.refund_rule,
            "bonus_refundable": policy.bonus_refundable,
            "principal": str(account.principal),
            "bonus": str(account.bonus),
            "used_bonus": str(used_bonus),
            "cash": str(due.total),
            "forfeited": str(kept.total),
        }
        common = {"at": at, "store_id": store_id, "actor": actor, "reason": reason}
        entry = forfeit_entry = None
        if due.total > 0:
            entry = _entry(
                account, kind=EntryKind.REFUND, split=-due, tender=tender, detail=detail, **common
            )
        if kept.total > 0:
            forfeit_entry = _entry(
                account, kind=EntryKind.FORFEIT, split=-kept, detail=detail, **common
            )
        account.lifetime_refunded += due.total
        _save(account, "lifetime_refunded")
        audit(
            action=AuditAction.WALLET_REFUND,
            actor=actor,
            member_id=member_id,
            store_id=store_id,
            target=f"wallet:{member_id}",
            detail={**detail, "reason": reason},
        )
    return Refund(cash=due.total, forfeited=kept.total, entry=entry, forfeit_entry=forfeit_entry)


def wallet_adjust(
    *,
    member_id: int,
    amount: Decimal,
    reason: str,
    actor: Any,
    part: str = "bonus",
    at: dt.datetime | None = None,
    store_id: int | None = None,
    corrects: WalletEntry | None = None,
) -> WalletEntry:
    """A manual adjustment of stored value: needs ``settings.manage`` and a reason; locks the
    wallet itself (``atomic(durable=True)``). ``amount`` is signed and moves one ``part``:
    ``bonus`` by default (a goodwill credit must not become refundable cash) or ``principal``
    (correcting a top-up keyed wrong, pointing at it with ``corrects``). A credit obeys the
    member's limit like a top-up; a debit cannot take more than the part holds."""
    if actor is None or not actor.can(Perm.SETTINGS_MANAGE):
        raise PermissionDenied(_("没有调整储值的权限"))
    errors = []
    try:
        amount = _amount(amount, signed=True)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if not (reason or "").strip():
        errors.append(FieldError("reason", "required", _("请填写调整原因")))
    if part not in ("principal", "bonus"):
        errors.append(FieldError("part", "invalid", _("只能调整本金或赠送金额")))
    if corrects is not None and corrects.member_id != member_id:
        errors.append(FieldError("corrects", "invalid", _("只能更正该会员的流水")))
    if errors:
        raise ValidationFailed(errors)
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        holder = _holder(member_id, live=amount > 0)
        account = lock_wallet(member_id)
        before = account.balance
        if amount > 0:
            _check_limit(
                account=account,
                policy=wallet_policy(),
                holder=holder,
                amount=amount,
                bonus=ZERO,
                tiers=[],
            )
        else:
            held = account.principal if part == "principal" else account.bonus
            if -amount > held:
                raise InsufficientBalance(wanted=-amount, available=held, field="amount")
        split = rules.Split(amount, ZERO) if part == "principal" else rules.Split(ZERO, amount)
        entry = _entry(
            account,
            kind=EntryKind.ADJUST,
            split=split,
            at=at,
            store_id=store_id,
            actor=actor,
            reason=_reason(reason),
            corrects=corrects,
            detail={"part": part, "balance_before": str(before), "role": actor.role},
        )
        _save(account)
        audit(
            action=AuditAction.WALLET_ADJUST,
            actor=actor,
            member_id=member_id,
            store_id=store_id,
            target=f"wallet:{member_id}",
            detail={"amount": str(amount), "part": part, "reason": entry.reason},
        )
    return entry

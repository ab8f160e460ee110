"""Writes to the points ledger (P-2..P-6, C-6).

Every function that changes a member's points takes the member's **locked** account
(``loyalty.locks.lock_account``) so a checkout can lock once and compose several of them in its
own transaction; ``points_adjust`` and ``points_expire_due`` lock for themselves. Each change
is an entry; the account's balance moves with it in the same transaction, and lots move so that
``balance == sum(entries) == sum(lot.remaining) - debt`` holds after every call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.core import sqlrows
from carecard.core.audit import AuditAction, audit
from carecard.core.errors import DomainError, FieldError, PermissionDenied, ValidationFailed
from carecard.core.roles import Perm
from carecard.loyalty.expiry import lot_expires_on
from carecard.loyalty.locks import lock_account
from carecard.loyalty.models import (
    EntryKind,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsLotUse,
    PointsProgram,
    PointsReminder,
    ShortfallPolicy,
)

_EARNING_KINDS = frozenset({EntryKind.EARN, EntryKind.BONUS, EntryKind.IMPORT})


class InsufficientPoints(DomainError):
    def __init__(self, *, wanted: int, available: int) -> None:
        super().__init__(
            code="insufficient_points",
            message=_("可用积分不足：需要 %(w)d，可用 %(a)d") % {"w": wanted, "a": available},
            errors=[FieldError("points", "insufficient", _("可用积分不足"))],
            status=422,
            detail={"wanted": wanted, "available": available},
        )


def program_get() -> PointsProgram:
    """The chain's points settings, created with defaults on first use."""
    program = PointsProgram.objects.order_by("pk").first()
    return program or PointsProgram.objects.create()


def _positive(points: Any, field: str = "points") -> int:
    if type(points) is not int or points <= 0:
        raise ValidationFailed([FieldError(field, "invalid", _("积分必须是正整数"))])
    return points


def _entry(
    account: PointsAccount, *, kind: str, points: int, at: dt.datetime, **fields: Any
) -> PointsEntry:
    account.balance += points
    entry = sqlrows.new(
        PointsEntry,
        member_id=account.pk,
        kind=kind,
        points=points,
        balance_after=account.balance,
        at=at,
        **fields,
    )
    sqlrows.insert([entry])
    return entry


def _save(account: PointsAccount, *fields: str) -> None:
    sqlrows.update(account, ["balance", "updated_at", *fields])


def _usable_lots(member_id: int, *, at: dt.datetime, include_pending: bool) -> Any:
    """Unexpired lots with points left (and available at ``at`` unless ``include_pending``)."""
    today = timezone.localdate(at)
    lots = PointsLot.objects.filter(member_id=member_id, remaining__gt=0).filter(
        Q(expires_on__isnull=True) | Q(expires_on__gte=today)
    )
    return lots if include_pending else lots.filter(available_at__lte=at)


def _open_lots(member_id: int, *, at: dt.datetime, include_pending: bool) -> list[PointsLot]:
    """The usable lots in spending order: soonest expiry first, lots that never expire last,
    then oldest first."""
    lots = _usable_lots(member_id, at=at, include_pending=include_pending)
    return list(lots.order_by(F("expires_on").asc(nulls_last=True), "pk"))


def _take(entry: PointsEntry, lots: list[PointsLot], points: int) -> int:
    """Take up to ``points`` from ``lots`` in order, recording which lots; returns the taken."""
    taken = 0
    uses, changed = [], []
    for lot in lots:
        if taken == points:
            break
        part = min(lot.remaining, points - taken)
        if part <= 0:
            continue
        lot.remaining -= part
        taken += part
        changed.append(lot)
        uses.append(PointsLotUse(entry=entry, lot=lot, member_id=entry.member_id, points=part))
    if changed:
        PointsLot.objects.bulk_update(changed, ["remaining"])
        PointsLotUse.objects.bulk_create(uses)
    return taken


def available_points(account: PointsAccount, *, at: dt.datetime) -> int:
    """Spendable points now: one aggregate over the member's open, available, unexpired lots
    (a quote asks this for every basket; loading the lots themselves cost more)."""
    lots = _usable_lots(account.pk, at=at, include_pending=False)
    total = lots.aggregate(s=Sum("remaining"))["s"] or 0
    return max(0, total - account.debt)


def points_earn(
    *,
    account: PointsAccount,
    points: int,
    at: dt.datetime,
    kind: str = EntryKind.EARN,
    store_id: int | None = None,
    reference: str = "",
    reason: str = "",
    explanation: dict[str, Any] | None = None,
    actor: Any = None,
    program: PointsProgram | None = None,
    entry_id: int | None = None,
) -> PointsEntry:
    """Add points as a new lot (needs ``account`` locked). The lot is pending for the program's
    ``pending_days`` and expires by its expiry policy. A member in debt repays it first.
    ``entry_id``: an id drawn beforehand (a sale draws it with its lock), so the entry is
    written without waiting for one."""
    _positive(points)
    program = program or program_get()
    entry = _entry(
        account,
        id=entry_id,
        kind=kind,
        points=points,
        at=at,
        store_id=store_id,
        reference=reference,
        reason=reason,
        explanation=explanation or {},
        actor=actor,
    )
    repay = min(account.debt, points)
    account.debt -= repay
    lot = sqlrows.new(
        PointsLot,
        member_id=account.pk,
        entry_id=entry.pk,
        earned_at=at,
        available_at=at + dt.timedelta(days=program.pending_days),
        expires_on=lot_expires_on(
            program.expiry_policy, timezone.localdate(at), months=program.expiry_months
        ),
        original=points,
        remaining=points - repay,
    )
    sqlrows.insert([lot], ids=False)
    if kind in _EARNING_KINDS:
        account.lifetime_earned += points
    _save(account, "debt", "lifetime_earned")
    return entry


def points_spend(
    *,
    account: PointsAccount,
    points: int,
    at: dt.datetime,
    kind: str = EntryKind.REDEEM,
    store_id: int | None = None,
    reference: str = "",
    reason: str = "",
    explanation: dict[str, Any] | None = None,
    actor: Any = None,
) -> PointsEntry:
    """Spend available points, oldest expiry first (needs ``account`` locked). Pending and
    expired points cannot be spent; too few points is an ``insufficient_points`` error and
    nothing is written."""
    _positive(points)
    lots = _open_lots(account.pk, at=at, include_pending=False)
    available = max(0, sum(lot.remaining for lot in lots) - account.debt)
    if points > available:
        raise InsufficientPoints(wanted=points, available=available)
    entry = _entry(
        account,
        kind=kind,
        points=-points,
        at=at,
        store_id=store_id,
        reference=reference,
        reason=reason,
        explanation=explanation or {},
        actor=actor,
    )
    _take(entry, lots, points)
    account.lifetime_spent += points
    _save(account, "lifetime_spent")
    return entry


@dataclass(frozen=True)
class Reversal:
    entry: PointsEntry | None
    reversed: int  # points taken back from the member's lots (or booked as debt)
    shortfall: int  # points already spent that the policy recovers as money instead


def points_reverse(
    *,
    account: PointsAccount,
    earned: PointsEntry,
    points: int,
    at: dt.datetime,
    reference: str = "",
    reason: str = "",
    policy: str | None = None,
    program: PointsProgram | None = None,
) -> Reversal:
    """Take back points earned by ``earned`` (a return, C-6; needs ``account`` locked).

    Points come from the earning's own lot first, then from the member's other open lots
    (pending included). What is still missing was spent: under the ``debt`` policy the balance
    goes negative and later earnings repay it; under ``recover_value`` the caller recovers
    ``shortfall × point value`` from the refund and only the covered points are reversed.
    """
    _positive(points)
    if earned.member_id != account.pk or earned.points <= 0:
        raise ValidationFailed([FieldError("entry", "invalid", _("只能冲回该会员获得积分的流水"))])
    already = -(
        PointsEntry.objects.filter(corrects=earned, kind=EntryKind.REVERSE).aggregate(
            s=Sum("points")
        )["s"]
        or 0
    )
    if points > earned.points - already:
        raise ValidationFailed(
            [
                FieldError(
                    "points",
                    "exceeds_earned",
                    _("冲回积分不能超过该笔获得的积分（%(n)d，已冲回 %(a)d）")
                    % {"n": earned.points, "a": already},
                )
            ]
        )
    policy = policy or (program or program_get()).shortfall_policy
    own = list(PointsLot.objects.filter(entry=earned, remaining__gt=0))
    others = [
        lot
        for lot in _open_lots(account.pk, at=at, include_pending=True)
        if lot.entry_id != earned.pk
    ]
    lots = own + others
    coverable = min(points, sum(lot.remaining for lot in lots))
    shortfall = points - coverable
    booked = points if policy == ShortfallPolicy.DEBT else coverable
    if booked == 0:
        return Reversal(entry=None, reversed=0, shortfall=shortfall)
    entry = _entry(
        account,
        kind=EntryKind.REVERSE,
        points=-booked,
        at=at,
        reference=reference,
        reason=reason,
        corrects=earned,
        explanation={"shortfall": shortfall, "policy": policy},
    )
    _take(entry, lots, coverable)
    if policy == ShortfallPolicy.DEBT:
        account.debt += shortfall
        return_shortfall = 0
    else:
        return_shortfall = shortfall
    _save(account, "debt")
    return Reversal(entry=entry, reversed=booked, shortfall=return_shortfall)


def points_restore(
    *,
    account: PointsAccount,
    spent: PointsEntry,
    points: int,
    at: dt.datetime,
    reference: str = "",
    reason: str = "",
) -> PointsEntry:
    """Give back points a sale spent (a return, C-6; needs ``account`` locked): into the lots
    they came from, latest-consumed first, so they keep their expiry. A member in debt repays
    it first."""
    _positive(points)
    if spent.member_id != account.pk or spent.points >= 0:
        raise ValidationFailed([FieldError("entry", "invalid", _("只能返还该会员使用积分的流水"))])
    restored = (
        PointsEntry.objects.filter(corrects=spent, kind=EntryKind.RESTORE).aggregate(
            s=Sum("points")
        )["s"]
        or 0
    )
    if points > -spent.points - restored:
        raise ValidationFailed(
            [
                FieldError(
                    "points",
                    "exceeds_spent",
                    _("返还积分不能超过该笔使用的积分（%(n)d，已返还 %(r)d）")
                    % {"n": -spent.points, "r": restored},
                )
            ]
        )
    entry = _entry(
        account,
        kind=EntryKind.RESTORE,
        points=points,
        at=at,
        reference=reference,
        reason=reason,
        corrects=spent,
    )
    repay = min(account.debt, points)
    account.debt -= repay
    left = points - repay
    net: dict[int, int] = {}
    for lot_id, part in PointsLotUse.objects.filter(entry__corrects=spent).values_list(
        "lot_id", "points"
    ):
        net[lot_id] = net.get(lot_id, 0) + part  # earlier restores are negative uses
    for lot_id, part in spent.lot_uses.values_list("lot_id", "points"):
        net[lot_id] = net.get(lot_id, 0) + part
    uses, changed = [], []
    lots = PointsLot.objects.in_bulk(list(net))
    for lot_id in sorted(net, reverse=True):
        if left == 0:
            break
        back = min(net[lot_id], left, lots[lot_id].original - lots[lot_id].remaining)
        if back <= 0:
            continue
        lots[lot_id].remaining += back
        left -= back
        changed.append(lots[lot_id])
        uses.append(PointsLotUse(entry=entry, lot_id=lot_id, member_id=account.pk, points=-back))
    if changed:
        PointsLot.objects.bulk_update(changed, ["remaining"])
        PointsLotUse.objects.bulk_create(uses)
    if left:  # pragma: no cover — the spent lots always have room for what they gave
        raise RuntimeError("restore exceeded the lots it came from")
    _save(account, "debt")
    return entry


def points_adjust(
    *,
    member_id: int,
    points: int,
    reason: str,
    actor: Any,
    at: dt.datetime | None = None,
    store_id: int | None = None,
) -> PointsEntry:
    """A manual adjustment (P-5): needs the points.adjust permission and a reason; audited. A
    deduction cannot take more than the available points."""
    if actor is None or not actor.can(Perm.POINTS_ADJUST):
        raise PermissionDenied(_("没有调整积分的权限"))
    errors = []
    if type(points) is not int or points == 0:
        errors.append(FieldError("points", "invalid", _("调整积分必须是非零整数")))
    if not (reason or "").strip():
        errors.append(FieldError("reason", "required", _("请填写调整原因")))
    if errors:
        raise ValidationFailed(errors)
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        account = lock_account(member_id)
        common = {"at": at, "store_id": store_id, "reason": reason.strip(), "actor": actor}
        if points > 0:
            entry = points_earn(account=account, points=points, kind=EntryKind.ADJUST, **common)
        else:
            entry = points_spend(account=account, points=-points, kind=EntryKind.ADJUST, **common)
        audit(
            action=AuditAction.POINTS_ADJUST,
            actor=actor,
            member_id=member_id,
            store_id=store_id,
            target=f"points_entry:{entry.pk}",
            detail={"points": points, "reason": reason.strip(), "balance": account.balance},
        )
    return entry


def points_expire_due(
    *, today: dt.date | None = None, at: dt.datetime | None = None, batch: int = 200
) -> int:
    """Expire every lot whose last day is before ``today`` (P-3): one entry per member, in
    batches of members each in its own transaction, stamped ``at`` (default now; a replayed
    history passes the start of ``today``). Idempotent: a second run finds nothing."""
    today = today or timezone.localdate()
    at = at or timezone.now()
    expired = 0
    while True:
        due = list(
            PointsLot.objects.filter(remaining__gt=0, expires_on__lt=today)
            .order_by("member_id")
            .values_list("member_id", flat=True)
            .distinct()[:batch]
        )
        if not due:
            return expired
        for member_id in due:
            with transaction.atomic(durable=True):
                account = lock_account(member_id)
                lots = list(
                    PointsLot.objects.filter(
                        member_id=member_id, remaining__gt=0, expires_on__lt=today
                    ).order_by("expires_on", "pk")
                )
                total = sum(lot.remaining for lot in lots)
                if not total:
                    continue
                entry = _entry(
                    account,
                    kind=EntryKind.EXPIRE,
                    points=-total,
                    at=at,
                    reason=_("积分到期"),
                    explanation={"lots": [lot.pk for lot in lots], "before": today.isoformat()},
                )
                _take(entry, lots, total)
                account.lifetime_expired += total
                _save(account, "lifetime_expired")
                expired += total


def points_queue_reminders(*, today: dt.date | None = None, days: int | None = None) -> int:
    """Queue a reminder for every member whose available points expire within ``days`` (the
    program's ``reminder_days``) from ``today``: one per member and expiry date, so running the
    job every day queues each reminder once. Returns how many were queued."""
    today = today or timezone.localdate()
    days = program_get().reminder_days if days is None else days
    horizon = today + dt.timedelta(days=days)
    due = (
        PointsLot.objects.filter(remaining__gt=0, expires_on__gte=today, expires_on__lte=horizon)
        .values("member_id", "expires_on")
        .annotate(points=Sum("remaining"))
        .order_by("member_id", "expires_on")
    )
    now = timezone.now()
    rows = [
        PointsReminder(
            member_id=d["member_id"], expires_on=d["expires_on"], points=d["points"], queued_at=now
        )
        for d in due
    ]
    before = PointsReminder.objects.count()
    PointsReminder.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return PointsReminder.objects.count() - before

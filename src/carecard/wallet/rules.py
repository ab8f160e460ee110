"""Stored-value arithmetic with no ORM (S-1, S-2): bonus tiers, balance limits, how a payment
splits between principal and bonus, how a return splits back, and what a cash refund pays.

Amounts are ``Decimal`` in whole cents throughout; every split is exact (the parts sum to the
whole) because it goes through ``core.money.allocate``.

Spending order: a payment takes principal (本金) and bonus (赠送金额) **in proportion to what the
member holds** at that moment. This is the common practice of Chinese stored-value programmes
(and how the bonus is recognised as a sales discount for VAT: each purchase carries its share of
it); it favours neither side when the member later asks for a refund of the principal, and it
cannot be gamed by choosing the order of purchases. A return puts money back in the proportion
of the payment it reverses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from carecard.core.money import CENT, ZERO, allocate


@dataclass(frozen=True)
class BonusTier:
    """Pay at least ``min_amount`` in one top-up, get ``bonus`` on top (充500送20)."""

    min_amount: Decimal
    bonus: Decimal
    rule_id: int | None = None
    name: str = ""


@dataclass(frozen=True)
class Split:
    """An amount in its principal and bonus parts (both of one sign)."""

    principal: Decimal
    bonus: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.bonus

    def __neg__(self) -> Split:
        return Split(-self.principal, -self.bonus)


NOTHING = Split(ZERO, ZERO)


def best_tier(amount: Decimal, tiers: Iterable[BonusTier]) -> BonusTier | None:
    """The one tier that applies to a top-up of ``amount``: among the tiers it reaches, the one
    with the largest bonus (tiers never stack). Ties go to the higher threshold, then to the
    lower rule id, so the choice is deterministic."""
    reached = [t for t in tiers if t.min_amount <= amount and t.bonus > 0]
    if not reached:
        return None
    return min(reached, key=lambda t: (-t.bonus, -t.min_amount, t.rule_id or 0))


def bonus_for(amount: Decimal, tiers: Iterable[BonusTier]) -> Decimal:
    tier = best_tier(amount, tiers)
    return tier.bonus if tier else ZERO


def max_topup(room: Decimal, tiers: Iterable[BonusTier]) -> Decimal:
    """The largest payment ``x`` (whole cents, possibly 0) whose credit ``x + bonus_for(x)``
    fits in ``room``, the distance from the balance to the member's limit.

    ``bonus_for`` never decreases as ``x`` grows, so the credit is strictly increasing and the
    answer is one of: ``room`` itself, ``room - b`` for a tier bonus ``b``, or one cent below a
    tier threshold (where the next cent would bring in a bigger bonus).
    """
    tiers = list(tiers)
    if room <= 0:
        return ZERO
    candidates = {room}
    candidates.update(room - t.bonus for t in tiers)
    candidates.update(t.min_amount - CENT for t in tiers)
    best = ZERO
    for x in candidates:
        if ZERO < x <= room and x > best and x + bonus_for(x, tiers) <= room:
            best = x
    return best


def balance_limit(
    *, cap: Decimal, unnamed_cap: Decimal, real_name_required: bool, real_named: bool
) -> Decimal:
    """The most a member's balance may hold after a top-up or a manual credit (S-2).

    Every member is capped at the named-card cap (记名卡, 5 000 CNY by default). When the chain
    requires real-name registration, a member with no ID number on file is held to the
    unnamed limit (不记名卡, 1 000 CNY by default) — or the cap, if that is lower.
    """
    if real_name_required and not real_named:
        return min(cap, unnamed_cap)
    return cap


def split_payment(amount: Decimal, *, principal: Decimal, bonus: Decimal) -> Split:
    """How a payment of ``amount`` is taken from a balance of ``principal`` + ``bonus``: in
    proportion, to the cent (largest remainder). Needs ``0 < amount <= principal + bonus``; no
    part ever exceeds what the member holds of it."""
    if not ZERO < amount <= principal + bonus:
        raise ValueError(f"cannot pay {amount} from {principal} + {bonus}")
    p, b = allocate(amount, [principal, bonus])
    return Split(p, b)


def split_reversal(amount: Decimal, *, paid: Split, reversed_before: Split) -> Split:
    """How a return of ``amount`` goes back into the wallet, for a payment that took ``paid``
    (positive parts) of which ``reversed_before`` was already returned.

    The split is computed on the running total (``allocate(before + amount, paid)`` minus
    what went back before), so a payment returned in several parts gives back exactly its own
    principal and bonus in the end, and every part stays within a cent of its pro rata share.
    Needs ``0 < amount <= paid.total - reversed_before.total``.
    """
    left = paid.total - reversed_before.total
    if not ZERO < amount <= left:
        raise ValueError(f"cannot reverse {amount}: {left} left of the payment")
    p, b = allocate(reversed_before.total + amount, [paid.principal, paid.bonus])
    return Split(p - reversed_before.principal, b - reversed_before.bonus)


def refund_due(
    *,
    principal: Decimal,
    bonus: Decimal,
    used_bonus: Decimal,
    rule: str,
    bonus_refundable: bool,
) -> Split:
    """The cash a refund (退储值) pays out, by part; the rest of the balance is forfeited.
    ``rule`` is a ``models.RefundRule`` value:

    - ``remaining``: the remaining principal (and the remaining bonus when the policy makes
      bonus refundable).
    - ``remaining_less_used_bonus``: the same, less the bonus the member already spent since the
      last refund (``used_bonus``) — taken off the principal first. Never below zero.
    - ``none``: nothing (the service refuses such a refund before it gets here).
    """
    if rule == "none":
        return NOTHING
    pay_principal = principal
    pay_bonus = bonus if bonus_refundable else ZERO
    if rule == "remaining_less_used_bonus":
        deduction = max(ZERO, used_bonus)
        off_principal = min(pay_principal, deduction)
        pay_principal -= off_principal
        pay_bonus -= min(pay_bonus, deduction - off_principal)
    elif rule != "remaining":
        raise ValueError(f"unknown refund rule {rule!r}")
    return Split(pay_principal, pay_bonus)

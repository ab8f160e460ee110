"""The stored-value ledger (S-1, S-2, C-4a, C-6): top-ups with bonus tiers, limits and real
name, payments and returns, cash refunds, adjustments, the ledger check and the liability."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from carecard.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.members.models import Member
from carecard.wallet import services
from carecard.wallet.locks import lock_wallet, lock_wallets
from carecard.wallet.models import (
    EntryKind,
    RefundRule,
    TopupRule,
    WalletAccount,
    WalletEntry,
    WalletPolicy,
)
from carecard.wallet.selectors import (
    verify_wallets,
    wallet_liability,
    wallet_payment,
    wallet_summary,
)
from tests.factories import make_member, make_staff, valid_id

pytestmark = pytest.mark.django_db

D = Decimal
T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)
_ids = itertools.count(100)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def named_member(store, **kw):
    """A member registered by real name (ID number on file; an odd sequence: gender M)."""
    seq = next(_ids)
    return make_member(
        store,
        id_number=valid_id(dt.date(1980, 1, 1) + dt.timedelta(seq), 2 * (seq % 400) + 1),
        birthday=None,
        **kw,
    )


@pytest.fixture
def member(store):
    return named_member(store, name="王秀英")


@pytest.fixture
def unnamed(store):
    return make_member(store, name="刘芳")


@pytest.fixture
def tiers(db):
    return [
        TopupRule.objects.create(name="充500送20", min_amount=D("500"), bonus=D("20")),
        TopupRule.objects.create(name="充1000送50", min_amount=D("1000"), bonus=D("50")),
    ]


@pytest.fixture
def manager(store):
    return make_staff(Role.STORE_MANAGER, store)


def policy(**fields) -> WalletPolicy:
    row = WalletPolicy.objects.order_by("pk").first() or WalletPolicy()
    for key, value in fields.items():
        setattr(row, key, value)
    row.save()
    return row


def topup(member, amount, when=T0, tender="wechat", **kw):
    return services.wallet_topup(
        member_id=member.pk, amount=D(amount), tender=tender, at=when, **kw
    )


def pay(member, amount, when=T0, **kw):
    with transaction.atomic():
        return services.wallet_pay(account=lock_wallet(member.pk), amount=D(amount), at=when, **kw)


def reverse(member, paid, amount, when=T0, **kw):
    with transaction.atomic():
        return services.wallet_pay_reverse(
            account=lock_wallet(member.pk), paid_entry=paid, amount=D(amount), at=when, **kw
        )


def account(member) -> WalletAccount:
    return WalletAccount.objects.get(pk=member.pk)


def parts(member) -> tuple[Decimal, Decimal, Decimal]:
    acct = account(member)
    return acct.balance, acct.principal, acct.bonus


def assert_consistent(member):
    assert verify_wallets([member.pk]) == []


# --- top-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bonus"),
    [
        ("100.00", None),
        ("499.99", None),
        ("500.00", "20.00"),
        ("999.99", "20.00"),
        ("1000.00", "50.00"),
        ("3000.00", "50.00"),
    ],
)
def test_topup_gets_the_best_single_tier(member, store, clerk, tiers, amount, bonus):
    result = topup(member, amount, store_id=store.pk, actor=clerk, reference="T-1")
    credit = D(amount) + D(bonus or 0)
    assert result.balance == credit
    assert (result.entry.kind, result.entry.amount, result.entry.principal) == (
        EntryKind.TOPUP,
        D(amount),
        D(amount),
    )
    assert (result.entry.tender, result.entry.actor, result.entry.store_id) == (
        "wechat",
        clerk,
        store.pk,
    )
    if bonus is None:
        assert result.bonus_entry is None
    else:
        entry = result.bonus_entry
        assert (entry.kind, entry.amount, entry.bonus, entry.principal) == (
            EntryKind.BONUS,
            D(bonus),
            D(bonus),
            D(0),
        )
        assert entry.balance_after == credit
        assert entry.detail["topup_entry"] == result.entry.pk
        assert entry.detail["min_amount"] in {"500.00", "1000.00"}
    assert parts(member) == (credit, D(amount), D(bonus or 0))
    acct = account(member)
    assert (acct.lifetime_topup, acct.lifetime_bonus) == (D(amount), D(bonus or 0))
    assert_consistent(member)


def test_only_tiers_valid_on_the_business_date_apply(member):
    TopupRule.objects.create(
        name="旧", min_amount=D("100"), bonus=D("30"), valid_to=dt.date(2026, 3, 9)
    )
    TopupRule.objects.create(name="停用", min_amount=D("100"), bonus=D("40"), active=False)
    TopupRule.objects.create(
        name="新", min_amount=D("100"), bonus=D("5"), valid_from=dt.date(2026, 3, 10)
    )
    TopupRule.objects.create(
        name="未来", min_amount=D("100"), bonus=D("60"), valid_from=dt.date(2026, 3, 11)
    )
    # 2026-03-09 16:30 UTC is already 3月10日 in Shanghai: the business date decides.
    result = topup(member, "100", when=dt.datetime(2026, 3, 9, 16, 30, tzinfo=dt.UTC))
    assert result.bonus_entry.amount == D("5.00")
    assert result.bonus_entry.detail["rule"] == "新"


def test_topup_over_the_cap_is_refused_and_writes_nothing(member, tiers):
    topup(member, "4450", tender="cash")  # + 50 bonus
    before = list(WalletEntry.objects.values_list("pk", flat=True))
    with pytest.raises(DomainError) as exc:
        topup(member, "500")  # 500 + 20 bonus would make 5020.00
    err = exc.value
    assert (err.code, err.status) == ("balance_cap_exceeded", 422)
    assert [(e.field, e.code) for e in err.errors] == [("amount", "balance_cap_exceeded")]
    assert "5000.00" in err.message
    assert "499.99" in err.message
    assert "赠送 20.00" in err.message
    assert err.detail == {
        "limit": "5000.00",
        "balance": "4500.00",
        "credit": "520.00",
        "max_amount": "499.99",
    }
    assert list(WalletEntry.objects.values_list("pk", flat=True)) == before
    assert parts(member) == (D("4500.00"), D("4450.00"), D("50.00"))
    # The offered maximum is accepted and fills the wallet to the cent.
    assert topup(member, "499.99").balance == D("4999.99")
    with pytest.raises(DomainError) as exc:
        topup(member, "0.02")
    assert exc.value.detail["max_amount"] == "0.01"
    assert_consistent(member)


def test_cap_follows_the_policy(member):
    policy(balance_cap=D("2000.00"))
    topup(member, "2000")
    with pytest.raises(DomainError, match="2000.00"):
        topup(member, "0.01")


def test_real_name_rule(store, unnamed, tiers):
    with pytest.raises(DomainError) as exc:
        topup(unnamed, "1000")  # 1050 > the unnamed limit of 1000
    err = exc.value
    assert (err.code, err.errors[0].field) == ("real_name_required", "amount")
    assert "身份证" in err.message
    assert "1000.00" in err.message
    assert err.detail["max_amount"] == "980.00"  # 980 + 20 bonus = 1000 exactly
    assert not WalletEntry.objects.exists()
    assert topup(unnamed, "980").balance == D("1000.00")
    assert wallet_summary(unnamed.pk, at=T0).max_topup == D(0)
    # Registering the ID number lifts the member to the named-card cap.
    Member.objects.filter(pk=unnamed.pk).update(id_number=valid_id(dt.date(1990, 2, 3), 77))
    assert topup(unnamed, "1000").balance == D("2050.00")
    assert_consistent(unnamed)


def test_real_name_can_be_switched_off(unnamed):
    policy(real_name_required=False)
    assert topup(unnamed, "3000").balance == D("3000.00")
    assert wallet_summary(unnamed.pk).limit == D("5000.00")


def test_topup_replay_by_reference(member, tiers):
    first = topup(member, "500", reference="POS-88")
    again = topup(member, "500", reference="POS-88")
    assert again.replayed
    assert not first.replayed
    assert (again.entry.pk, again.bonus_entry.pk) == (first.entry.pk, first.bonus_entry.pk)
    assert again.balance == D("520.00")
    with pytest.raises(Conflict) as exc:
        topup(member, "600", reference="POS-88")
    assert exc.value.code == "topup_reference_reused"
    assert WalletEntry.objects.count() == 2
    assert_consistent(member)


@pytest.mark.parametrize("bad", [D(0), D("-5"), D("1.005"), 1.5, "10", True, None, D("NaN")])
def test_amount_must_be_positive_whole_cents(member, bad):
    with pytest.raises(ValidationFailed) as exc:
        services.wallet_topup(member_id=member.pk, amount=bad, tender="cash", at=T0)
    assert exc.value.errors[0].field == "amount"
    assert not WalletEntry.objects.exists()


def test_topup_refusals(store, member):
    with pytest.raises(ValidationFailed) as exc:
        topup(member, "100", tender="stored_value")
    assert exc.value.errors[0].field == "tender"
    with pytest.raises(NotFound):
        services.wallet_topup(member_id=999_999, amount=D("1"), tender="cash", at=T0)
    Member.objects.filter(pk=member.pk).update(status="cancelled")
    with pytest.raises(DomainError) as exc:
        topup(member, "100")
    assert exc.value.code == "member_inactive"
    other = named_member(store)
    policy(enabled=False)
    with pytest.raises(DomainError) as exc:
        topup(other, "100")
    assert exc.value.code == "wallet_disabled"
    assert not WalletEntry.objects.exists()
    assert not WalletAccount.objects.exists()


# --- payment and return ------------------------------------------------------------------------


def test_pay_takes_principal_and_bonus_pro_rata(member, store, tiers):
    topup(member, "1000")  # 1000 principal + 50 bonus
    entry = pay(member, "105", reference="sale:1", store_id=store.pk)
    assert (entry.kind, entry.amount, entry.principal, entry.bonus) == (
        EntryKind.PAY,
        D("-105.00"),
        D("-100.00"),
        D("-5.00"),
    )
    assert entry.balance_after == D("945.00")
    entry = pay(member, "0.01")
    assert (entry.principal, entry.bonus) == (D("-0.01"), D("0.00"))
    entry = pay(member, "944.99")  # everything left, to the cent
    assert (entry.principal, entry.bonus) == (D("-899.99"), D("-45.00"))
    assert parts(member) == (D(0), D(0), D(0))
    assert account(member).lifetime_paid == D("1050.00")
    assert wallet_payment(member.pk, "sale:1").amount == D("-105.00")
    assert_consistent(member)


def test_paying_more_than_the_balance_writes_nothing(member):
    topup(member, "30")
    with pytest.raises(DomainError) as exc:
        pay(member, "30.01")
    err = exc.value
    assert (err.code, err.status, err.errors[0].field) == (
        "insufficient_balance",
        422,
        "stored_value",
    )
    assert err.detail == {"wanted": "30.01", "available": "30.00"}
    assert WalletEntry.objects.count() == 1
    assert parts(member) == (D("30.00"), D("30.00"), D(0))
    with pytest.raises(ValidationFailed) as exc:
        pay(member, "0")
    assert exc.value.errors[0].field == "stored_value"


def test_a_return_puts_money_back_pro_rata_never_more_than_paid(member, tiers):
    topup(member, "1000")
    paid = pay(member, "105", reference="sale:7")
    first = reverse(member, paid, "50", reference="return:1")
    assert (first.kind, first.corrects, first.amount) == (EntryKind.PAY_REVERSAL, paid, D("50.00"))
    assert (first.principal, first.bonus) == (D("47.62"), D("2.38"))
    rest = reverse(member, paid, "55", reference="return:2")
    assert (rest.principal, rest.bonus) == (
        D("52.38"),
        D("2.62"),
    )  # the payment's own split, in total
    assert parts(member) == (D("1050.00"), D("1000.00"), D("50.00"))
    with pytest.raises(ValidationFailed) as exc:
        reverse(member, paid, "0.01")
    assert exc.value.errors[0].code == "exceeds_paid"
    assert account(member).lifetime_paid == D(0)
    assert_consistent(member)


def test_locking_creates_missing_accounts(store, member):
    other = named_member(store)
    topup(member, "10")
    with transaction.atomic():
        locked = lock_wallets([other.pk, member.pk, member.pk])
    assert sorted(locked) == sorted([member.pk, other.pk])
    assert (locked[member.pk].balance, locked[other.pk].balance) == (D("10.00"), D(0))
    assert WalletAccount.objects.count() == 2
    assert verify_wallets() == []


def test_pay_and_return_statement_budget(member, django_assert_num_queries):
    """The checkout's part: one insert and one update to pay, one read more to return."""
    topup(member, "100")
    with transaction.atomic():
        acct = lock_wallet(member.pk)
        with django_assert_num_queries(2):
            paid = services.wallet_pay(account=acct, amount=D("10"), at=T0, reference="sale:9")
        with django_assert_num_queries(3):
            services.wallet_pay_reverse(account=acct, paid_entry=paid, amount=D("4"), at=T0)
    assert_consistent(member)


def test_only_a_payment_of_the_member_can_be_reversed(store, member):
    other = named_member(store)
    topup(member, "100")
    topup(other, "100")
    paid = pay(other, "10")
    with pytest.raises(ValidationFailed) as exc:
        reverse(member, paid, "5")
    assert exc.value.errors[0].field == "entry"
    top = WalletEntry.objects.filter(member=member, kind=EntryKind.TOPUP).get()
    with pytest.raises(ValidationFailed):
        reverse(member, top, "5")


def test_a_return_is_not_held_to_the_cap(member):
    topup(member, "5000", tender="bank_card")
    paid = pay(member, "1000")
    topup(member, "1000")
    reverse(member, paid, "1000")
    assert parts(member) == (D("6000.00"), D("6000.00"), D(0))
    assert wallet_summary(member.pk).max_topup == D(0)
    with pytest.raises(DomainError) as exc:
        topup(member, "0.01")
    assert exc.value.detail["max_amount"] == "0.00"
    assert_consistent(member)


# --- refund ----------------------------------------------------------------------------------


def test_refund_pays_the_remaining_principal_and_forfeits_the_bonus(store, member, clerk, tiers):
    topup(member, "1000")
    pay(member, "210")  # 200 principal + 10 bonus
    assert wallet_summary(member.pk).refundable == D("800.00")
    result = services.wallet_refund(
        member_id=member.pk, actor=clerk, reason="会员搬家", at=at(1), store_id=store.pk
    )
    assert (result.cash, result.forfeited) == (D("800.00"), D("40.00"))
    assert (result.entry.kind, result.entry.amount, result.entry.principal) == (
        EntryKind.REFUND,
        D("-800.00"),
        D("-800.00"),
    )
    assert (result.entry.actor, result.entry.reason, result.entry.tender) == (
        clerk,
        "会员搬家",
        "cash",
    )
    assert (result.forfeit_entry.kind, result.forfeit_entry.bonus) == (
        EntryKind.FORFEIT,
        D("-40.00"),
    )
    assert result.entry.detail["cash"] == "800.00"
    assert result.forfeit_entry.balance_after == D(0)
    assert parts(member) == (D(0), D(0), D(0))
    assert account(member).lifetime_refunded == D("800.00")
    audited = AuditEntry.objects.get(action=AuditAction.WALLET_REFUND)
    assert (audited.actor_id, audited.member_id, audited.store_id) == (
        clerk.pk,
        member.pk,
        store.pk,
    )
    assert (audited.detail["cash"], audited.detail["reason"]) == ("800.00", "会员搬家")
    with pytest.raises(DomainError) as exc:
        services.wallet_refund(member_id=member.pk, actor=clerk, reason="再退")
    assert AuditEntry.objects.filter(action=AuditAction.WALLET_REFUND).count() == 1
    assert exc.value.code == "nothing_to_refund"
    assert_consistent(member)


def test_refund_needs_permission_and_reason(store, member):
    topup(member, "100")
    with pytest.raises(PermissionDenied):
        services.wallet_refund(member_id=member.pk, actor=make_staff(Role.MARKETING), reason="x")
    with pytest.raises(PermissionDenied):
        services.wallet_refund(member_id=member.pk, actor=None, reason="x")
    with pytest.raises(ValidationFailed) as exc:
        services.wallet_refund(member_id=member.pk, actor=make_staff(Role.CLERK, store), reason=" ")
    assert exc.value.errors[0].field == "reason"
    assert parts(member) == (D("100.00"), D("100.00"), D(0))


@pytest.mark.parametrize(
    ("rule", "bonus_refundable", "cash", "forfeited"),
    [
        (RefundRule.REMAINING, False, "800.00", "40.00"),
        (RefundRule.REMAINING, True, "840.00", "0.00"),
        (RefundRule.REMAINING_LESS_USED_BONUS, False, "790.00", "50.00"),
    ],
)
def test_refund_rules(member, clerk, tiers, rule, bonus_refundable, cash, forfeited):
    policy(refund_rule=rule, bonus_refundable=bonus_refundable)
    topup(member, "1000")
    pay(member, "210")
    result = services.wallet_refund(member_id=member.pk, actor=clerk, reason="退卡")
    assert (result.cash, result.forfeited) == (D(cash), D(forfeited))
    assert account(member).balance == D(0)
    assert_consistent(member)


def test_used_bonus_counts_from_the_last_refund(member, clerk, tiers):
    policy(refund_rule=RefundRule.REMAINING_LESS_USED_BONUS)
    topup(member, "1000")
    pay(member, "210")  # uses 10 of bonus
    services.wallet_refund(member_id=member.pk, actor=clerk, reason="退卡")
    topup(member, "100")
    assert wallet_summary(member.pk).refundable == D("100.00")
    assert services.wallet_refund(member_id=member.pk, actor=clerk, reason="再退").cash == D(
        "100.00"
    )


def test_no_refund_under_a_none_policy(member, clerk):
    policy(refund_rule=RefundRule.NONE)
    topup(member, "100")
    with pytest.raises(DomainError) as exc:
        services.wallet_refund(member_id=member.pk, actor=clerk, reason="退卡")
    assert exc.value.code == "not_refundable"
    assert parts(member) == (D("100.00"), D("100.00"), D(0))


# --- adjustments ---------------------------------------------------------------------------


def test_adjustment_needs_permission_and_reason_and_is_recorded(store, member, manager, hq_admin):
    with pytest.raises(PermissionDenied):
        services.wallet_adjust(member_id=member.pk, amount=D("10"), reason="补偿", actor=manager)
    with pytest.raises(ValidationFailed) as exc:
        services.wallet_adjust(
            member_id=member.pk, amount=D(0), reason=" ", actor=hq_admin, part="cash"
        )
    assert {e.field for e in exc.value.errors} == {"amount", "reason", "part"}
    credit = services.wallet_adjust(
        member_id=member.pk, amount=D("30"), reason="服务补偿", actor=hq_admin, at=at(1)
    )
    assert (credit.kind, credit.amount, credit.bonus, credit.principal) == (
        EntryKind.ADJUST,
        D("30.00"),
        D("30.00"),
        D(0),
    )
    assert (credit.actor, credit.reason) == (hq_admin, "服务补偿")
    assert credit.detail == {"part": "bonus", "balance_before": "0.00", "role": "hq_admin"}
    audited = AuditEntry.objects.get(action=AuditAction.WALLET_ADJUST)
    assert (audited.actor_id, audited.member_id) == (hq_admin.pk, member.pk)
    assert audited.detail == {"amount": "30.00", "part": "bonus", "reason": "服务补偿"}
    with pytest.raises(DomainError) as exc:
        services.wallet_adjust(
            member_id=member.pk, amount=D("-0.01"), reason="冲错", actor=hq_admin, part="principal"
        )
    assert (exc.value.code, exc.value.errors[0].field) == ("insufficient_balance", "amount")
    top = topup(member, "200").entry
    fix = services.wallet_adjust(
        member_id=member.pk,
        amount=D("-180"),
        reason="充值金额录错(应为20)",
        actor=hq_admin,
        part="principal",
        corrects=top,
    )
    assert (fix.principal, fix.corrects) == (D("-180.00"), top)
    assert parts(member) == (D("50.00"), D("20.00"), D("30.00"))
    with pytest.raises(DomainError) as exc:
        services.wallet_adjust(
            member_id=member.pk, amount=D("4950.01"), reason="多加", actor=hq_admin
        )
    assert exc.value.code == "balance_cap_exceeded"
    assert WalletEntry.objects.filter(kind=EntryKind.ADJUST).count() == 2
    assert_consistent(member)


# --- ledger check, liability, constraints --------------------------------------------------


def test_verify_wallets_reports_a_tampered_cache(member, tiers):
    topup(member, "500")
    assert verify_wallets() == []
    WalletAccount.objects.filter(pk=member.pk).update(balance=D("519.99"), principal=D("499.99"))
    [mismatch] = verify_wallets()
    assert (mismatch.cached, mismatch.entries, mismatch.entries_principal) == (
        D("519.99"),
        D("520.00"),
        D("500.00"),
    )
    # Parts moved between principal and bonus are caught too, with the balance still right.
    WalletAccount.objects.filter(pk=member.pk).update(
        balance=D("520"), principal=D("520"), bonus=D("0")
    )
    [mismatch] = verify_wallets([member.pk])
    assert (mismatch.cached_principal, mismatch.entries_principal) == (D("520.00"), D("500.00"))
    assert verify_wallets([]) == []


def test_verify_wallets_reports_entries_without_an_account(member):
    topup(member, "10")
    WalletAccount.objects.filter(pk=member.pk).delete()
    [mismatch] = verify_wallets()
    assert (mismatch.cached, mismatch.entries) == (None, D("10.00"))


def test_liability_at_a_date(store, member, clerk, tiers):
    other = named_member(store)
    topup(member, "500", when=T0)  # 500 + 20
    topup(other, "100", when=at(1))
    pay(member, "52", when=at(2))  # 50 + 2
    services.wallet_refund(member_id=other.pk, actor=clerk, reason="退卡", at=at(3))
    before = wallet_liability(T0 - dt.timedelta(seconds=1))
    assert (before.total, before.holders) == (D(0), 0)
    day0 = wallet_liability(dt.date(2026, 3, 10))
    assert (day0.total, day0.principal, day0.bonus, day0.holders) == (
        D("520.00"),
        D("500.00"),
        D("20.00"),
        1,
    )
    day1 = wallet_liability(at(1))
    assert (day1.total, day1.holders) == (D("620.00"), 2)
    day2 = wallet_liability(at(2))
    assert (day2.total, day2.principal, day2.bonus) == (D("568.00"), D("550.00"), D("18.00"))
    later = wallet_liability(dt.date(2026, 3, 20))
    assert (later.total, later.principal, later.bonus, later.holders) == (
        D("468.00"),
        D("450.00"),
        D("18.00"),
        1,
    )


def test_summary(member, tiers):
    topup(member, "1000")
    summary = wallet_summary(member.pk, at=T0)
    assert (summary.balance, summary.principal, summary.bonus) == (
        D("1050.00"),
        D("1000.00"),
        D("50.00"),
    )
    assert (summary.real_named, summary.limit, summary.max_topup) == (
        True,
        D("5000.00"),
        D("3900.00"),
    )
    assert summary.refundable == D("1000.00")
    empty = wallet_summary(999_999)
    assert (empty.balance, empty.real_named) == (D(0), False)


def _insert(member, **fields):
    row = {
        "member_id": member.pk,
        "kind": EntryKind.ADJUST,
        "amount": D("10"),
        "principal": D("10"),
        "bonus": D("0"),
        "balance_after": D("10"),
        "at": T0,
        "reason": "x",
        "actor": make_staff(Role.HQ_ADMIN),
    } | fields
    with pytest.raises(IntegrityError), transaction.atomic():
        WalletEntry.objects.create(**row)


def test_the_database_guards_the_ledger(member):
    _insert(member, amount=D("10"), principal=D("7"), bonus=D("2"))
    _insert(member, amount=D("0"), principal=D("0"))
    _insert(member, balance_after=D("-1"))
    _insert(member, principal=D("12"), bonus=D("-2"))
    _insert(member, kind=EntryKind.TOPUP)  # no tender
    _insert(member, kind=EntryKind.PAY)  # a payment must be negative
    _insert(member, kind=EntryKind.PAY_REVERSAL)  # must point at the payment
    _insert(member, reason="")  # an adjustment needs a reason
    if connection.vendor == "sqlite":  # PostgreSQL rounds numeric(12, 2) before checking
        _insert(member, amount=D("10.005"), principal=D("10.005"))
    for bad in (
        {"balance": D("-1"), "principal": D("-1")},
        {"balance": D("5"), "principal": D("4")},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            WalletAccount.objects.create(member_id=member.pk, **bad)
    # Float noise on SQLite is not mistaken for a broken sum.
    WalletAccount.objects.create(
        member_id=member.pk, balance=D("0.30"), principal=D("0.10"), bonus=D("0.20")
    )


# --- property: any sequence keeps the ledger consistent --------------------------------------


@pytest.mark.django_db(transaction=False)
def test_any_sequence_of_operations_keeps_the_ledger_consistent(store):
    TopupRule.objects.create(name="充500送20", min_amount=D("500"), bonus=D("20"))
    TopupRule.objects.create(name="充1000送50", min_amount=D("1000"), bonus=D("50"))
    clerk = make_staff(Role.CLERK, store)
    admin = make_staff(Role.HQ_ADMIN)
    amounts = st.one_of(
        st.sampled_from([D("500.00"), D("999.99"), D("1000.00"), D("0.01"), D("4000.00")]),
        st.integers(1, 300_000).map(lambda c: D(c).scaleb(-2)),
    )

    class Wallet(RuleBasedStateMachine):
        @initialize(
            real_named=st.booleans(),
            real_name_required=st.booleans(),
            rule=st.sampled_from([*RefundRule.values, RefundRule.REMAINING_LESS_USED_BONUS]),
            bonus_refundable=st.booleans(),
        )
        def setup(self, real_named, real_name_required, rule, bonus_refundable):
            policy(
                real_name_required=real_name_required,
                refund_rule=rule,
                bonus_refundable=bonus_refundable,
            )
            self.member = named_member(store) if real_named else make_member(store)
            self.rule, self.bonus_refundable = rule, bonus_refundable
            self.limit = D("5000.00") if real_named or not real_name_required else D("1000.00")
            self.minutes = 0
            self.total = D("0.00")  # what the entries must sum to
            self.payments: dict[int, list[Decimal]] = {}  # payment pk -> [paid, returned]
            self.payment_entries: list[WalletEntry] = []

        def now(self) -> dt.datetime:
            self.minutes += 1
            return T0 + dt.timedelta(minutes=self.minutes)

        def balance(self) -> Decimal:
            acct = WalletAccount.objects.filter(pk=self.member.pk).first()
            return acct.balance if acct else D(0)

        @rule(amount=amounts)
        def do_topup(self, amount):
            bonus = D("50") if amount >= 1000 else D("20") if amount >= 500 else D(0)
            fits = self.total + amount + bonus <= self.limit
            try:
                result = topup(self.member, amount, self.now(), actor=clerk)
            except DomainError as exc:
                assert exc.code in {"balance_cap_exceeded", "real_name_required"}  # noqa: PT017
                assert not fits
                assert D(exc.detail["max_amount"]) < amount  # noqa: PT017
                event(f"topup refused: {exc.code}")
            else:
                assert fits
                assert result.balance <= self.limit
                self.total += amount + bonus
                event("topup")

        @precondition(lambda self: self.total > 0 or bool(self.payment_entries))
        @rule(data=st.data())
        def do_checkout(self, data):
            """A sale paid with stored value, or a return of an earlier one."""
            if self.payment_entries and (self.total == 0 or data.draw(st.booleans())):
                self.give_back(data)
            else:
                self.pay(data)

        def pay(self, data):
            # Mostly within the balance, sometimes just over it.
            amount = D(data.draw(st.integers(1, int(self.total * 100) + 200))).scaleb(-2)
            try:
                entry = pay(self.member, amount, self.now())
            except DomainError as exc:
                assert exc.code == "insufficient_balance"  # noqa: PT017
                assert amount > self.total
                event("pay refused")
            else:
                self.total -= amount
                self.payments[entry.pk] = [amount, D(0)]
                self.payment_entries.append(entry)
                event("pay")

        def give_back(self, data):
            entry = data.draw(st.sampled_from(self.payment_entries))
            paid, returned = self.payments[entry.pk]
            amount = D(data.draw(st.integers(1, int((paid - returned) * 100) + 3))).scaleb(-2)
            try:
                reverse(self.member, entry, amount, self.now())
            except ValidationFailed as exc:
                assert exc.errors[0].code == "exceeds_paid"  # noqa: PT017
                assert amount > paid - returned
                event("reverse refused")
            else:
                assert amount <= paid - returned
                self.payments[entry.pk][1] += amount
                self.total += amount
                event("reverse")

        @precondition(lambda self: self.total > 0 and self.rule != RefundRule.NONE)
        @rule()
        def do_refund(self):
            acct = WalletAccount.objects.get(pk=self.member.pk)
            most = acct.principal + (acct.bonus if self.bonus_refundable else D(0))
            result = services.wallet_refund(
                member_id=self.member.pk, actor=clerk, reason="退卡", at=self.now()
            )
            assert result.cash + result.forfeited == self.total
            assert result.cash <= most
            if self.rule == RefundRule.REMAINING:
                assert result.cash == most
            self.total = D(0)
            event("refund")

        @rule(
            amount=st.integers(-10_000, 100_000).filter(bool),
            part=st.sampled_from(["principal", "bonus"]),
        )
        def do_adjust(self, amount, part):
            amount = D(amount).scaleb(-2)
            try:
                services.wallet_adjust(
                    member_id=self.member.pk,
                    amount=amount,
                    reason="盘点",
                    actor=admin,
                    part=part,
                    at=self.now(),
                )
            except DomainError as exc:
                assert exc.code in {  # noqa: PT017
                    "insufficient_balance",
                    "balance_cap_exceeded",
                    "real_name_required",
                }
                assert amount < 0 or self.total + amount > self.limit
                event(f"adjust refused: {exc.code}")
            else:
                assert amount < 0 or self.total + amount <= self.limit
                self.total += amount
                event("adjust")

        @invariant()
        def consistent(self):
            if not hasattr(self, "member"):
                return
            assert verify_wallets([self.member.pk]) == []
            acct = WalletAccount.objects.filter(pk=self.member.pk).first()
            if acct is None:
                assert self.total == 0
                return
            assert acct.balance == self.total == acct.principal + acct.bonus
            assert acct.principal >= 0
            assert acct.bonus >= 0
            back: dict[int, Decimal] = {}
            for pk, amount in WalletEntry.objects.filter(
                member=self.member, kind=EntryKind.PAY_REVERSAL
            ).values_list("corrects_id", "amount"):
                back[pk] = back.get(pk, D(0)) + amount
            for pk, (paid, returned) in self.payments.items():
                assert back.get(pk, D(0)) == returned <= paid

    Wallet.TestCase.settings = settings(
        max_examples=12,
        stateful_step_count=40,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    Wallet.TestCase().runTest()

"""The points ledger (P-2..P-6, C-6): entries, lots, FIFO spending, pending, expiry, returns."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from carecard.core.errors import DomainError, PermissionDenied, ValidationFailed
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.loyalty import services
from carecard.loyalty.expiry import add_months, lot_expires_on
from carecard.loyalty.locks import lock_account
from carecard.loyalty.models import (
    EntryKind,
    ExpiryPolicy,
    PointsAccount,
    PointsEntry,
    PointsLot,
    ShortfallPolicy,
)
from carecard.loyalty.selectors import points_liability, points_summary, verify_points
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


@pytest.fixture
def member(store):
    return make_member(store, name="王秀英")


def program(**fields):
    prog = services.program_get()
    for key, value in fields.items():
        setattr(prog, key, value)
    prog.save()
    return prog


def earn(member, points, when=T0, **kw):
    with transaction.atomic():
        return services.points_earn(account=lock_account(member.pk), points=points, at=when, **kw)


def spend(member, points, when=T0, **kw):
    with transaction.atomic():
        return services.points_spend(account=lock_account(member.pk), points=points, at=when, **kw)


def account(member) -> PointsAccount:
    return PointsAccount.objects.get(pk=member.pk)


def assert_consistent(member):
    assert verify_points([member.pk]) == []


# --- pure expiry -----------------------------------------------------------------------------


def test_expiry_policies():
    d = dt.date(2026, 1, 31)
    assert lot_expires_on("none", d) is None
    assert lot_expires_on("year_end", d) == dt.date(2026, 12, 31)
    assert lot_expires_on("next_year_end", d) == dt.date(2027, 12, 31)
    assert lot_expires_on("rolling_months", d, months=1) == dt.date(2026, 2, 28)
    assert lot_expires_on("rolling_months", d, months=13) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2024, 2, 29), 12) == dt.date(2025, 2, 28)
    with pytest.raises(ValueError, match="unknown"):
        lot_expires_on("weekly", d)


# --- earning and spending ----------------------------------------------------------------------


def test_spending_takes_the_soonest_expiry_first(member):
    program(expiry_policy=ExpiryPolicy.ROLLING_MONTHS, expiry_months=12)
    late = earn(member, 100, T0)
    early_policy = program(expiry_months=3)
    early = earn(member, 50, at(1), program=early_policy)
    entry = spend(member, 70, at(2))
    assert entry.points == -70
    assert entry.balance_after == 80
    lots = {lot.entry_id: lot.remaining for lot in PointsLot.objects.filter(member=member)}
    assert lots == {early.pk: 0, late.pk: 80}
    assert sorted(entry.lot_uses.values_list("points", flat=True)) == [20, 50]
    assert account(member).lifetime_spent == 70
    assert_consistent(member)


def test_pending_points_cannot_be_spent_until_the_window_passes(member):
    program(pending_days=7)
    earn(member, 100, T0)
    summary = points_summary(member.pk, at=at(1))
    assert (summary.balance, summary.available, summary.pending) == (100, 0, 100)
    with pytest.raises(DomainError) as exc:
        spend(member, 10, at(1))
    assert exc.value.code == "insufficient_points"
    assert PointsEntry.objects.filter(member=member).count() == 1  # nothing written
    spend(member, 10, at(7))
    assert points_summary(member.pk, at=at(7)).available == 90


def test_spending_more_than_available_writes_nothing(member):
    earn(member, 30)
    with pytest.raises(DomainError) as exc:
        spend(member, 31)
    assert exc.value.detail == {"wanted": 31, "available": 30}
    assert account(member).balance == 30
    assert list(PointsLot.objects.values_list("remaining", flat=True)) == [30]


@pytest.mark.parametrize("bad", [0, -5, 1.5, "10", True])
def test_points_must_be_positive_integers(member, bad):
    with pytest.raises(ValidationFailed):
        earn(member, bad)
    assert not PointsEntry.objects.exists()


# --- expiry --------------------------------------------------------------------------------


def test_year_end_expiry_job_is_idempotent(member):
    program(expiry_policy=ExpiryPolicy.YEAR_END)
    earn(member, 120, T0)
    spend(member, 20, at(1))
    summary = points_summary(member.pk, at=dt.datetime(2026, 12, 10, tzinfo=dt.UTC))
    assert (summary.expiring, summary.expiring_on) == (100, dt.date(2026, 12, 31))
    assert services.points_expire_due(today=dt.date(2026, 12, 31)) == 0  # still valid that day
    assert services.points_expire_due(today=dt.date(2027, 1, 1)) == 100
    assert services.points_expire_due(today=dt.date(2027, 1, 1)) == 0
    acct = account(member)
    assert (acct.balance, acct.lifetime_expired) == (0, 100)
    expired = PointsEntry.objects.get(member=member, kind=EntryKind.EXPIRE)
    assert expired.points == -100
    assert_consistent(member)


def test_reminders_are_queued_once_per_member_and_expiry(member):
    from carecard.loyalty.models import PointsReminder

    program(expiry_policy=ExpiryPolicy.YEAR_END, reminder_days=30)
    earn(member, 120, T0)
    earn(member, 30, at(5))
    spend(member, 50, at(6))
    assert services.points_queue_reminders(today=dt.date(2026, 11, 30)) == 0  # 31 days ahead
    assert services.points_queue_reminders(today=dt.date(2026, 12, 1)) == 1
    assert services.points_queue_reminders(today=dt.date(2026, 12, 2)) == 0  # already queued
    reminder = PointsReminder.objects.get()
    assert (reminder.points, reminder.expires_on) == (100, dt.date(2026, 12, 31))


def test_expired_but_unprocessed_points_cannot_be_spent(member):
    program(expiry_policy=ExpiryPolicy.YEAR_END)
    earn(member, 50, T0)
    with pytest.raises(DomainError):
        spend(member, 10, dt.datetime(2027, 1, 2, 3, tzinfo=dt.UTC))


# --- returns -------------------------------------------------------------------------------


def test_return_reverses_points_from_their_own_lot(member):
    sale = earn(member, 100, T0, reference="sale:1")
    other = earn(member, 40, at(1))
    with transaction.atomic():
        result = services.points_reverse(
            account=lock_account(member.pk), earned=sale, points=60, at=at(2)
        )
    assert (result.reversed, result.shortfall) == (60, 0)
    lots = {lot.entry_id: lot.remaining for lot in PointsLot.objects.all()}
    assert lots == {sale.pk: 40, other.pk: 40}
    assert result.entry.corrects == sale
    with pytest.raises(ValidationFailed) as exc, transaction.atomic():
        services.points_reverse(account=lock_account(member.pk), earned=sale, points=41, at=at(3))
    assert exc.value.errors[0].code == "exceeds_earned"
    assert_consistent(member)


def test_return_of_spent_points_goes_into_debt_repaid_by_later_earnings(member):
    program(shortfall_policy=ShortfallPolicy.DEBT)
    sale = earn(member, 100, T0)
    spend(member, 90, at(1))
    with transaction.atomic():
        result = services.points_reverse(
            account=lock_account(member.pk), earned=sale, points=100, at=at(2)
        )
    assert (result.reversed, result.shortfall) == (100, 0)
    acct = account(member)
    assert (acct.balance, acct.debt) == (-90, 90)
    assert points_summary(member.pk, at=at(2)).available == 0
    assert_consistent(member)
    earn(member, 150, at(3))
    acct = account(member)
    assert (acct.balance, acct.debt) == (60, 0)
    assert points_summary(member.pk, at=at(3)).available == 60
    assert_consistent(member)


def test_return_of_spent_points_under_recover_value_reports_the_shortfall(member):
    program(shortfall_policy=ShortfallPolicy.RECOVER_VALUE)
    sale = earn(member, 100, T0)
    spend(member, 90, at(1))
    with transaction.atomic():
        result = services.points_reverse(
            account=lock_account(member.pk), earned=sale, points=100, at=at(2)
        )
    assert (result.reversed, result.shortfall) == (10, 90)
    acct = account(member)
    assert (acct.balance, acct.debt) == (0, 0)
    assert_consistent(member)


def test_restore_gives_spent_points_back_to_their_lots(member):
    program(expiry_policy=ExpiryPolicy.ROLLING_MONTHS, expiry_months=6)
    first = earn(member, 30, T0)
    second = earn(member, 50, at(1))
    paid = spend(member, 60, at(2), kind=EntryKind.PAY)
    with transaction.atomic():
        services.points_restore(account=lock_account(member.pk), spent=paid, points=25, at=at(3))
    lots = {lot.entry_id: lot.remaining for lot in PointsLot.objects.all()}
    assert lots == {first.pk: 0, second.pk: 45}  # latest-consumed lot first
    with transaction.atomic():
        services.points_restore(account=lock_account(member.pk), spent=paid, points=35, at=at(3))
    lots = {lot.entry_id: lot.remaining for lot in PointsLot.objects.all()}
    assert lots == {first.pk: 30, second.pk: 50}
    with pytest.raises(ValidationFailed), transaction.atomic():
        services.points_restore(account=lock_account(member.pk), spent=paid, points=1, at=at(4))
    assert_consistent(member)


def test_restore_repays_debt_first(member):
    program(shortfall_policy=ShortfallPolicy.DEBT)
    sale = earn(member, 100, T0)
    paid = spend(member, 90, at(1), kind=EntryKind.PAY)
    with transaction.atomic():
        services.points_reverse(account=lock_account(member.pk), earned=sale, points=100, at=at(2))
    with transaction.atomic():
        services.points_restore(account=lock_account(member.pk), spent=paid, points=30, at=at(3))
    acct = account(member)
    assert (acct.balance, acct.debt) == (-60, 60)
    assert_consistent(member)


# --- manual adjustments --------------------------------------------------------------------


def test_adjustment_needs_permission_and_reason_and_is_audited(store, member):
    clerk = make_staff(Role.CLERK, store)
    manager = make_staff(Role.STORE_MANAGER, store)
    with pytest.raises(PermissionDenied):
        services.points_adjust(member_id=member.pk, points=10, reason="补录", actor=clerk)
    with pytest.raises(ValidationFailed) as exc:
        services.points_adjust(member_id=member.pk, points=0, reason=" ", actor=manager)
    assert {e.field for e in exc.value.errors} == {"points", "reason"}
    services.points_adjust(member_id=member.pk, points=200, reason="系统迁移补录", actor=manager)
    services.points_adjust(member_id=member.pk, points=-50, reason="重复积分", actor=manager)
    assert account(member).balance == 150
    trail = AuditEntry.objects.filter(action=AuditAction.POINTS_ADJUST, member_id=member.pk)
    assert sorted(e.detail["points"] for e in trail) == [-50, 200]
    with pytest.raises(DomainError):
        services.points_adjust(member_id=member.pk, points=-151, reason="多扣", actor=manager)
    assert account(member).balance == 150
    assert_consistent(member)


def test_liability_at_a_date(member):
    earn(member, 100, T0)
    spend(member, 30, at(5))
    assert points_liability(at(1)) == 100
    assert points_liability(at(6)) == 70


def test_verify_points_reports_a_tampered_cache(member):
    earn(member, 100)
    PointsAccount.objects.filter(pk=member.pk).update(balance=99)
    [mismatch] = verify_points()
    assert (mismatch.cached, mismatch.entries, mismatch.lots) == (99, 100, 100)


# --- property: any sequence keeps the ledger consistent ------------------------------------


@pytest.mark.django_db(transaction=False)
def test_any_sequence_of_operations_keeps_the_ledger_consistent(store):
    member_obj = make_member(store, name="李建国")
    manager = make_staff(Role.STORE_MANAGER, store)

    class Ledger(RuleBasedStateMachine):
        @initialize(
            policy=st.sampled_from([ShortfallPolicy.DEBT, ShortfallPolicy.RECOVER_VALUE]),
            pending=st.sampled_from([0, 2]),
            expiry=st.sampled_from(list(ExpiryPolicy.values)),
        )
        def setup(self, policy, pending, expiry):
            PointsEntry.objects.filter(member=member_obj).update(corrects=None)
            from carecard.loyalty.models import PointsLotUse

            PointsLotUse.objects.all().delete()
            PointsLot.objects.all().delete()
            PointsEntry.objects.all().delete()
            PointsAccount.objects.all().delete()
            program(
                shortfall_policy=policy,
                pending_days=pending,
                expiry_policy=expiry,
                expiry_months=1,
            )
            self.day = 0.0
            self.earned: list[PointsEntry] = []
            self.spent: list[PointsEntry] = []
            self.model_total = 0  # what the entries must sum to

        def now(self) -> dt.datetime:
            return at(self.day)

        @rule(points=st.integers(1, 500))
        def do_earn(self, points):
            self.earned.append(earn(member_obj, points, self.now()))
            self.model_total += points

        @rule(points=st.integers(1, 300))
        def do_spend(self, points):
            before = points_summary(member_obj.pk, at=self.now()).available
            try:
                self.spent.append(spend(member_obj, points, self.now()))
            except DomainError as exc:
                assert exc.code == "insufficient_points"  # noqa: PT017 — a state machine step
                assert points > before
            else:
                assert points <= before
                self.model_total -= points

        @rule(days=st.floats(0.5, 60))
        def advance(self, days):
            self.day += days

        @rule()
        def expire(self):
            self.model_total -= services.points_expire_due(today=timezone.localdate(self.now()))

        @rule(data=st.data())
        def reverse(self, data):
            if not self.earned:
                return
            entry = data.draw(st.sampled_from(self.earned))
            points = data.draw(st.integers(1, entry.points + 5))
            left = entry.points + sum(
                c.points for c in entry.corrections.filter(kind=EntryKind.REVERSE)
            )
            try:
                with transaction.atomic():
                    result = services.points_reverse(
                        account=lock_account(member_obj.pk),
                        earned=entry,
                        points=points,
                        at=self.now(),
                    )
            except ValidationFailed:
                assert points > left  # never gives back more than was earned
            else:
                assert points <= left
                assert result.reversed + result.shortfall == points
                self.model_total -= result.reversed

        @rule(data=st.data())
        def restore(self, data):
            if not self.spent:
                return
            entry = data.draw(st.sampled_from(self.spent))
            points = data.draw(st.integers(1, -entry.points + 5))
            left = -entry.points - sum(
                c.points for c in entry.corrections.filter(kind=EntryKind.RESTORE)
            )
            try:
                with transaction.atomic():
                    services.points_restore(
                        account=lock_account(member_obj.pk),
                        spent=entry,
                        points=points,
                        at=self.now(),
                    )
            except ValidationFailed:
                assert points > left  # never gives back more than was spent
            else:
                assert points <= left
                self.model_total += points

        @rule(points=st.integers(-300, 300).filter(bool))
        def adjust(self, points):
            try:
                services.points_adjust(
                    member_id=member_obj.pk,
                    points=points,
                    reason="盘点",
                    actor=manager,
                    at=self.now(),
                )
            except DomainError as exc:
                assert exc.code == "insufficient_points"  # noqa: PT017 — a state machine step
            else:
                self.model_total += points

        @invariant()
        def consistent(self):
            assert verify_points() == []
            acct = PointsAccount.objects.filter(pk=member_obj.pk).first()
            assert (acct.balance if acct else 0) == self.model_total
            if acct:
                assert acct.debt >= 0
                # Only a return under the debt policy may push the balance below zero.
                assert acct.balance >= -acct.debt
            assert not PointsLot.objects.filter(remaining__lt=0).exists()

    Ledger.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    Ledger.TestCase().runTest()

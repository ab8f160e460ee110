import datetime as dt

import pytest
from django.utils import timezone

from carecard.chain import services
from carecard.chain.models import PosTerminal, Staff
from carecard.core.errors import ValidationFailed
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from tests.factories import make_staff

pytestmark = pytest.mark.django_db


def test_terminal_token_hashed_rotated_revoked(store):
    terminal, token = services.terminal_create(actor=None, store=store, code="POS-1")
    assert token.startswith("cct_")
    stored = PosTerminal.objects.get(pk=terminal.pk)
    assert token not in stored.token_hash
    assert len(stored.token_hash) == 64
    assert services.terminal_authenticate(token) == terminal
    new_token = services.terminal_rotate_token(actor=None, terminal=terminal)
    assert services.terminal_authenticate(token) is None
    assert services.terminal_authenticate(new_token) == terminal
    services.terminal_revoke(actor=None, terminal=terminal)
    assert services.terminal_authenticate(new_token) is None


def test_expired_token_refused(store):
    terminal, token = services.terminal_create(actor=None, store=store, code="POS-2")
    PosTerminal.objects.filter(pk=terminal.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert services.terminal_authenticate(token) is None
    assert services.terminal_authenticate("cct_nonsense") is None
    assert services.terminal_authenticate("") is None


def test_store_manager_cannot_create_terminal_for_other_store(store, other_store):
    manager = make_staff(Role.STORE_MANAGER, store)
    with pytest.raises(Exception) as exc:  # noqa: PT011
        services.terminal_create(actor=manager, store=other_store, code="POS-X")
    assert getattr(exc.value, "status", None) == 403
    assert not PosTerminal.objects.filter(code="POS-X").exists()


def test_login_lockout_after_repeated_failures(store, settings):
    settings.CARECARD_LOGIN_MAX_FAILURES = 3
    staff = make_staff(Role.CLERK, store, username="lockme")
    assert services.login_record_failure(username="lockme", ip="127.0.0.1") is None
    assert services.login_record_failure(username="lockme", ip="127.0.0.1") is None
    until = services.login_record_failure(username="lockme", ip="127.0.0.1")
    assert until is not None
    assert until > timezone.now()
    assert services.login_check_lock(username="lockme") == until
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 3
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_LOCKED).count() == 1
    services.login_record_success(staff=staff, ip=None)
    assert services.login_check_lock(username="lockme") is None


def test_staff_create_validation_and_role_change_audited(store, hq_admin):
    with pytest.raises(ValidationFailed) as exc:
        services.staff_create(actor=hq_admin, username="x1", password="123", role=Role.CLERK)
    fields = {e.field for e in exc.value.errors}
    assert {"home_store", "password"} <= fields
    assert not Staff.objects.filter(username="x1").exists()
    staff = services.staff_create(
        actor=hq_admin,
        username="x2",
        password="Strong-pass-2026",
        role=Role.CLERK,
        home_store=store,
    )
    services.staff_set_role(actor=hq_admin, staff=staff, role=Role.MARKETING, home_store=store)
    staff.refresh_from_db()
    assert staff.role == Role.MARKETING
    assert staff.home_store is None
    entry = AuditEntry.objects.get(action=AuditAction.ROLE_CHANGE)
    assert entry.detail["before"]["role"] == Role.CLERK


def test_console_logout_is_audited(client, store):
    staff = make_staff(Role.CLERK, store, username="byebye")
    client.force_login(staff)
    response = client.post("/logout/")
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action=AuditAction.LOGOUT)
    assert entry.actor == staff

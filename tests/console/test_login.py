"""Sign in and out; lockout after repeated failures (G-6)."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from carecard.chain.models import Staff
from carecard.core.models import AuditAction, AuditEntry
from tests.factories import make_staff

pytestmark = pytest.mark.django_db

PASSWORD = "pass-Word-2026"


def test_login_success_and_logout(client, store):
    staff = make_staff(store=store, username="counter1", password=PASSWORD)
    response = client.post(reverse("console:login"), {"username": "counter1", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("console:home")
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN, actor=staff).count() == 1
    assert client.get(reverse("console:home")).status_code == 200
    assert client.get(reverse("console:logout")).status_code == 405  # logout is POST only
    response = client.post(reverse("console:logout"))
    assert response["Location"] == reverse("console:login")
    assert client.get(reverse("console:home")).status_code == 302


def test_login_follows_safe_next_only(client, store):
    make_staff(store=store, username="counter2", password=PASSWORD)
    creds = {"username": "counter2", "password": PASSWORD}
    response = client.post(reverse("console:login") + "?next=/members/", creds)
    assert response["Location"] == "/members/"
    client.post(reverse("console:logout"))
    response = client.post(reverse("console:login") + "?next=https://evil.example/", creds)
    assert response["Location"] == reverse("console:home")


def test_wrong_password_is_refused(client, store):
    staff = make_staff(store=store, username="counter3", password=PASSWORD)
    response = client.post(reverse("console:login"), {"username": "counter3", "password": "nope"})
    assert response.status_code == 401
    assert "用户名或密码错误" in response.content.decode()
    staff.refresh_from_db()
    assert staff.failed_logins == 1
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 1


@override_settings(CARECARD_LOGIN_MAX_FAILURES=3)
def test_lockout_after_repeated_failures(client, store):
    make_staff(store=store, username="counter4", password=PASSWORD)
    for _ in range(3):
        response = client.post(reverse("console:login"), {"username": "counter4", "password": "x"})
    assert "账号已锁定" in response.content.decode()
    # Even the right password is refused while locked, and no session is opened.
    response = client.post(reverse("console:login"), {"username": "counter4", "password": PASSWORD})
    assert response.status_code == 401
    assert "账号已锁定" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert Staff.objects.get(username="counter4").locked_until is not None

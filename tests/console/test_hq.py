"""HQ pages: stores and zones, staff and roles, POS terminals, audit log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from carecard.chain import services as chain_services
from carecard.chain.models import PosTerminal, Staff, TradingZone
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db


def test_stores_list_counts_members(hq_client, store, other_store):
    make_member(store)
    make_member(store)
    make_member(other_store)
    page = hq_client.get(reverse("console:stores")).content.decode()
    assert f'data-code="{store.code}"' in page
    assert f'data-code="{other_store.code}"' in page


def test_add_zone_and_coverage(hq_client, store):
    url = reverse("console:store_detail", args=[store.pk])
    response = hq_client.post(
        url,
        {"name": "碧云社区", "district": "浦东新区", "keywords": "碧云、金桥", "households": "200"},
    )
    assert response.status_code == 302
    zone = TradingZone.objects.get(store=store, name="碧云社区")
    assert (zone.keywords, zone.households) == (["碧云", "金桥"], 200)
    make_member(store, address="上海市浦东新区碧云路1号")
    page = hq_client.get(url).content.decode()
    assert 'data-zone="碧云社区"' in page
    assert "0.5%" in page  # 1 member per 200 households


def test_add_zone_with_bad_households_writes_nothing(hq_client, store):
    response = hq_client.post(
        reverse("console:store_detail", args=[store.pk]), {"name": "一区", "households": "-3"}
    )
    assert response.status_code == 422
    assert 'data-testid="error-households"' in response.content.decode()
    assert not TradingZone.objects.filter(store=store).exists()


def test_create_staff(hq_client, hq_admin, store):
    response = hq_client.post(
        reverse("console:staff_new"),
        {
            "username": "newclerk",
            "password": "Counter-2026-pass",
            "display_name": "小周",
            "role": Role.PHARMACIST,
            "home_store": store.pk,
            "staff_code": "E1001",
        },
    )
    assert response.status_code == 302
    staff = Staff.objects.get(username="newclerk")
    assert (staff.role, staff.home_store_id, staff.display_name) == (
        Role.PHARMACIST,
        store.pk,
        "小周",
    )
    assert staff.check_password("Counter-2026-pass")
    assert AuditEntry.objects.filter(action=AuditAction.STAFF_CREATE, actor=hq_admin).exists()
    assert 'data-username="newclerk"' in hq_client.get(reverse("console:staff")).content.decode()


def test_store_role_without_store_is_refused(hq_client):
    before = Staff.objects.count()
    response = hq_client.post(
        reverse("console:staff_new"),
        {"username": "nostore", "password": "Counter-2026-pass", "role": Role.CLERK},
    )
    assert response.status_code == 422
    assert 'data-testid="error-home_store"' in response.content.decode()
    assert Staff.objects.count() == before


def test_weak_password_is_refused(hq_client, store):
    response = hq_client.post(
        reverse("console:staff_new"),
        {"username": "weak", "password": "12345678", "role": Role.CLERK, "home_store": store.pk},
    )
    assert response.status_code == 422
    assert 'data-testid="error-password"' in response.content.decode()
    assert not Staff.objects.filter(username="weak").exists()


def test_change_role_and_deactivate(hq_client, store, other_store):
    target = make_staff(Role.CLERK, store)
    response = hq_client.post(
        reverse("console:staff_edit", args=[target.pk]),
        {"role": Role.STORE_MANAGER, "home_store": other_store.pk},
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.role, target.home_store_id, target.is_active) == (
        Role.STORE_MANAGER,
        other_store.pk,
        False,
    )
    assert AuditEntry.objects.filter(action=AuditAction.ROLE_CHANGE, target=f"staff:{target.pk}")


def test_cannot_demote_yourself(hq_client, hq_admin):
    response = hq_client.post(
        reverse("console:staff_edit", args=[hq_admin.pk]), {"role": Role.CLERK, "is_active": "1"}
    )
    assert response.status_code == 422
    hq_admin.refresh_from_db()
    assert hq_admin.role == Role.HQ_ADMIN


def test_staff_list_filters_by_role(hq_client, store):
    make_staff(Role.PHARMACIST, store, username="pharma1")
    make_staff(Role.CLERK, store, username="clerk-x")
    response = hq_client.get(
        reverse("console:staff"),
        {"role": Role.PHARMACIST},
        headers={"HX-Request": "true", "HX-Target": "staff-table"},
    )
    page = response.content.decode()
    assert "<html" not in page
    assert 'data-username="pharma1"' in page
    assert 'data-username="clerk-x"' not in page


def test_terminal_create_shows_token_once_then_rotate_and_revoke(hq_client, store):
    response = hq_client.post(
        reverse("console:terminals"),
        {"store": store.pk, "code": "POS-01", "name": "1号收银台", "valid_days": "365"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    token = page.split('data-testid="token">')[1].split("<")[0]
    terminal = PosTerminal.objects.get(code="POS-01")
    assert chain_services.terminal_authenticate(token) == terminal
    assert token not in hq_client.get(reverse("console:terminals")).content.decode()

    page = hq_client.post(reverse("console:terminal_rotate", args=[terminal.pk])).content.decode()
    new_token = page.split('data-testid="token">')[1].split("<")[0]
    assert new_token != token
    assert chain_services.terminal_authenticate(token) is None
    assert chain_services.terminal_authenticate(new_token) == terminal

    response = hq_client.post(reverse("console:terminal_revoke", args=[terminal.pk]))
    assert response.status_code == 302
    assert chain_services.terminal_authenticate(new_token) is None


def test_terminal_with_bad_code_writes_nothing(hq_client, store):
    response = hq_client.post(reverse("console:terminals"), {"store": store.pk, "code": "坏 编号"})
    assert response.status_code == 422
    assert 'data-testid="error-code"' in response.content.decode()
    assert not PosTerminal.objects.exists()


def test_audit_log_filters(hq_client, clerk_client, store):
    member = make_member(store)
    other = make_member(store)
    clerk_client.get(reverse("console:member_detail", args=[member.pk]))  # a health read
    response = hq_client.get(
        reverse("console:audit"), {"action": AuditAction.HEALTH_READ, "member": member.member_no}
    )
    page = response.content.decode()
    assert page.count('data-testid="audit-row"') == 1
    assert 'data-action="health_read"' in page
    response = hq_client.get(reverse("console:audit"), {"member": other.member_no})
    page = response.content.decode()
    assert page.count('data-testid="audit-row"') == 1
    assert 'data-action="member_enrol"' in page
    response = hq_client.get(reverse("console:audit"), {"member": "000000000000"})
    assert response.content.decode().count('data-testid="audit-row"') == 0
    response = hq_client.get(reverse("console:audit"), {"from": "2999-01-01"})
    assert response.content.decode().count('data-testid="audit-row"') == 0

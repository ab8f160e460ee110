"""An HQ admin adds a clerk on the staff page; the new clerk can then sign in."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from carecard.chain.models import Staff
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from tests.e2e.helpers import login, logout, shot
from tests.factories import make_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_hq_admin_adds_a_clerk_who_can_then_sign_in(page: Page, store, other_store) -> None:
    admin = make_staff(Role.HQ_ADMIN, username="hq-wang")
    make_staff(Role.CLERK, other_store, username="clerk-old")

    login(page, "hq-wang")
    expect(page.get_by_test_id("scope")).to_have_text("总部 · 全连锁")
    page.get_by_test_id("nav-staff").click()
    expect(page.get_by_role("heading", name="员工与角色", exact=True)).to_be_visible()
    rows = page.get_by_test_id("staff-row")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-testid=staff-row][data-username=clerk-li]")).to_have_count(0)

    page.get_by_test_id("staff-new").click()
    expect(page).to_have_url(re.compile(r"/staff/new/$"))
    form = page.get_by_test_id("staff-form")
    page.fill("#s-display-name", "李小梅")
    page.fill("#s-username", "clerk-li")
    page.fill("#s-password", "Counter-2026-li")
    page.select_option("#s-role", "clerk")
    # A store role without a home store is refused, next to the field, and nothing is created.
    page.select_option("#s-home-store", "")
    page.get_by_test_id("staff-submit").click()
    expect(form.get_by_test_id("error-home_store")).to_have_text("门店角色必须指定所属门店")
    assert not Staff.objects.filter(username="clerk-li").exists()

    # The password is not sent back to the browser: type it again.
    expect(page.locator("#s-password")).to_have_value("")
    page.fill("#s-password", "Counter-2026-li")
    page.select_option("#s-home-store", str(store.pk))
    shot(page, "10-staff-form")
    page.get_by_test_id("staff-submit").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))
    expect(page.get_by_test_id("message-success")).to_contain_text("已新增员工 李小梅")
    row = page.locator("[data-testid=staff-row][data-username=clerk-li]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("李小梅")
    expect(row).to_contain_text("营业员")
    expect(row).to_contain_text(store.name)
    expect(rows).to_have_count(3)
    shot(page, "11-staff-list")

    created = Staff.objects.get(username="clerk-li")
    assert (created.role, created.home_store_id, created.display_name) == (
        Role.CLERK,
        store.pk,
        "李小梅",
    )
    assert created.is_active
    assert not created.is_staff
    entry = AuditEntry.objects.get(action=AuditAction.STAFF_CREATE, target=f"staff:{created.pk}")
    assert entry.actor_id == admin.pk
    assert entry.detail == {"username": "clerk-li", "role": "clerk"}

    logout(page)
    login(page, "clerk-li", "Counter-2026-li")
    expect(page.get_by_test_id("who")).to_have_text("李小梅")
    expect(page.get_by_test_id("scope")).to_contain_text(store.name)
    expect(page.get_by_test_id("nav-enrol")).to_be_visible()
    # HQ pages are not offered to a clerk, and refused when typed in.
    expect(page.get_by_test_id("nav-staff")).to_have_count(0)
    response = page.goto("/staff/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_test_id("error-403")).to_contain_text("无权访问")
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN, actor=created).count() == 1

"""The console switches to English; repeated wrong passwords lock the account."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from carecard.chain.models import Staff
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from tests.e2e.helpers import PASSWORD, login, shot
from tests.factories import make_member, make_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_language_switch_renders_english(page: Page, store) -> None:
    make_staff(Role.CLERK, store, username="clerk-en")
    member = make_member(store, name="孙丽", phone="13812340099", card_number="P77000001")

    login(page, "clerk-en")
    page.goto(f"/members/{member.pk}/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_test_id("nav-members")).to_have_text("会员查询")
    expect(page.get_by_role("heading", name="基本资料", exact=True)).to_be_visible()

    page.get_by_test_id("language").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    # Back on the same page, now in English; the member's own data is unchanged.
    expect(page.get_by_test_id("member-name")).to_have_text("孙丽")
    expect(page.get_by_test_id("nav-members")).to_have_text("Find members")
    expect(page.get_by_test_id("nav-enrol")).to_have_text("Enrol member")
    expect(page.get_by_role("heading", name="Profile", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Cards", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Health information", exact=True)).to_be_visible()
    expect(page.get_by_test_id("card-P77000001").get_by_test_id("card-status")).to_have_text(
        "Active"
    )
    assert "基本资料" not in page.content()
    shot(page, "30-member-english")

    page.get_by_test_id("language").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_test_id("nav-members")).to_have_text("会员查询")


def test_repeated_wrong_passwords_lock_the_account(page: Page, store, settings) -> None:
    settings.CARECARD_LOGIN_MAX_FAILURES = 3
    staff = make_staff(Role.CLERK, store, username="clerk-lock")

    page.goto("/login/")
    expect(page.get_by_role("heading", name="员工登录", exact=True)).to_be_visible()
    for _attempt in range(2):
        page.fill("#id_username", "clerk-lock")
        page.fill("#id_password", "wrong-Pass-1")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-error")).to_have_text("用户名或密码错误")
    staff.refresh_from_db()
    assert staff.locked_until is None

    page.fill("#id_username", "clerk-lock")
    page.fill("#id_password", "wrong-Pass-1")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("账号已锁定，请稍后再试")

    # Even the right password is refused while the lock lasts.
    page.fill("#id_username", "clerk-lock")
    page.fill("#id_password", PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("账号已锁定，请稍后再试")
    expect(page.get_by_test_id("logout")).to_have_count(0)
    expect(page.locator("#id_username")).to_have_value("clerk-lock")
    shot(page, "31-login-locked")

    staff.refresh_from_db()
    assert staff.locked_until is not None
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 3
    locked = AuditEntry.objects.get(action=AuditAction.LOGIN_LOCKED)
    assert locked.target == f"staff:{staff.pk}"
    assert not AuditEntry.objects.filter(action=AuditAction.LOGIN).exists()
    # Another account is not affected.
    make_staff(Role.CLERK, store, username="clerk-ok")
    login(page, "clerk-ok")
    assert Staff.objects.get(username="clerk-ok").failed_logins == 0

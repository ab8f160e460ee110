"""A clerk cannot see another store's member's health data or full phone number (A-2, G-3)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from tests.e2e.helpers import login, logout, shot
from tests.factories import make_member, make_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_other_stores_clerk_sees_no_health_data(page: Page, store, other_store) -> None:
    make_staff(Role.CLERK, store, username="clerk-a")
    clerk_b = make_staff(Role.CLERK, other_store, username="clerk-b")
    member = make_member(
        other_store,
        name="赵敏",
        phone="13812345678",
        allergies="青霉素、磺胺",
        chronic_conditions=["hypertension"],
        medical_history="胃溃疡",
        consent_health_data=True,
    )
    health_reads = AuditEntry.objects.filter(action=AuditAction.HEALTH_READ, member_id=member.pk)
    assert health_reads.count() == 0

    login(page, "clerk-a")
    # Found by the full phone number, but the list shows it masked.
    page.get_by_test_id("quick-search").fill("13812345678")
    page.get_by_test_id("quick-search").press("Enter")
    row = page.get_by_test_id("result-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("result-phone")).to_have_text("138****5678")
    row.get_by_test_id("result-link").click()

    expect(page.get_by_test_id("member-name")).to_have_text("赵敏")
    expect(page.get_by_test_id("member-phone")).to_have_text("138****5678")
    expect(page.get_by_test_id("health-locked")).to_contain_text("无权查看")
    expect(page.get_by_test_id("health-data")).to_have_count(0)
    html = page.content()
    for secret in ("青霉素", "磺胺", "胃溃疡", "13812345678"):
        assert secret not in html
    shot(page, "20-other-store-member")

    response = page.goto(f"/members/{member.pk}/health/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_test_id("error-403")).to_contain_text("无权访问")
    assert "青霉素" not in page.content()
    shot(page, "21-health-403")
    assert health_reads.count() == 0

    # The member's own store sees the health data, and that read is audited.
    logout(page)
    login(page, "clerk-b")
    page.goto(f"/members/{member.pk}/")
    expect(page.get_by_test_id("member-phone")).to_have_text("13812345678")
    health = page.get_by_test_id("health-data")
    expect(health).to_contain_text("青霉素")
    expect(health).to_contain_text("磺胺")
    expect(health).to_contain_text("高血压")
    expect(health).to_contain_text("胃溃疡")
    expect(page.get_by_test_id("health-locked")).to_have_count(0)
    shot(page, "22-own-store-member")
    assert list(health_reads.values_list("actor_id", flat=True)) == [clerk_b.pk]

    response = page.goto(f"/members/{member.pk}/health/")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_test_id("health-data")).to_contain_text("青霉素")
    assert health_reads.count() == 2

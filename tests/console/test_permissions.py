"""Server-side permission checks on console pages (A-2, G-3, G-4)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from tests.console.conftest import signed_in
from tests.factories import make_member, make_staff, make_store

pytestmark = pytest.mark.django_db

HEALTHY = {
    "allergies": "青霉素过敏史",
    "chronic_conditions": ["diabetes"],
    "consent_health_data": True,
}


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("console:member_search"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


@pytest.mark.parametrize(
    "name",
    [
        "console:staff",
        "console:staff_new",
        "console:stores",
        "console:terminals",
        "console:audit",
        "console:duplicates",
    ],
)
def test_clerk_gets_403_on_hq_pages(clerk_client, name):
    response = clerk_client.get(reverse(name))
    assert response.status_code == 403
    assert "无权访问" in response.content.decode()


def test_clerk_cannot_create_staff(clerk_client, store):
    from carecard.chain.models import Staff

    before = Staff.objects.count()
    response = clerk_client.post(
        reverse("console:staff_new"),
        {"username": "sneaky", "password": "Long-pass-2026", "role": Role.HQ_ADMIN},
    )
    assert response.status_code == 403
    assert Staff.objects.count() == before


def test_marketing_cannot_enrol_or_edit(store):
    marketing = make_staff(Role.MARKETING)
    member = make_member(store)
    client = signed_in(marketing)
    assert client.get(reverse("console:member_enrol")).status_code == 403
    assert client.get(reverse("console:member_edit", args=[member.pk])).status_code == 403
    # …but may look members up, with the phone masked.
    response = client.get(reverse("console:member_search"), {"q": member.phone})
    assert response.status_code == 200
    page = response.content.decode()
    masked = member.phone[:3] + "****" + member.phone[-4:]
    assert f'data-testid="result-phone">{masked}<' in page
    assert f'data-testid="result-phone">{member.phone}<' not in page


def test_other_store_clerk_sees_no_health_data_and_no_read_is_audited(other_clerk, store):
    member = make_member(store, **HEALTHY)
    client = signed_in(other_clerk)
    response = client.get(reverse("console:member_detail", args=[member.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "青霉素过敏史" not in page
    assert "无权查看" in page
    assert 'data-testid="health-locked"' in page
    assert member.phone not in page  # masked outside the member's store
    assert not AuditEntry.objects.filter(action=AuditAction.HEALTH_READ).exists()
    # The health fragment itself is refused.
    assert client.get(reverse("console:member_health", args=[member.pk])).status_code == 403
    assert not AuditEntry.objects.filter(action=AuditAction.HEALTH_READ).exists()


def test_own_store_clerk_sees_health_and_the_read_is_audited(clerk_client, clerk, store):
    member = make_member(store, **HEALTHY)
    response = clerk_client.get(reverse("console:member_detail", args=[member.pk]))
    page = response.content.decode()
    assert "青霉素过敏史" in page
    assert "糖尿病" in page
    assert member.phone in page
    reads = AuditEntry.objects.filter(action=AuditAction.HEALTH_READ, member_id=member.pk)
    assert list(reads.values_list("actor_id", flat=True)) == [clerk.pk]


def test_hq_admin_sees_health_of_any_store(hq_client, hq_admin, other_store):
    member = make_member(other_store, **HEALTHY)
    response = hq_client.get(reverse("console:member_health", args=[member.pk]))
    assert response.status_code == 200
    assert "青霉素过敏史" in response.content.decode()
    assert (
        AuditEntry.objects.filter(
            action=AuditAction.HEALTH_READ, member_id=member.pk, actor=hq_admin
        ).count()
        == 1
    )


def test_audit_trail_only_for_audit_roles_and_own_store_manager(clerk_client, manager, store):
    member = make_member(store)
    url = reverse("console:member_detail", args=[member.pk])
    assert 'data-testid="audit-trail"' not in clerk_client.get(url).content.decode()
    page = signed_in(manager).get(url).content.decode()
    assert 'data-testid="audit-trail"' in page
    assert 'data-testid="trail-member_enrol"' in page
    other_manager = make_staff(Role.STORE_MANAGER, make_store())
    assert 'data-testid="audit-trail"' not in signed_in(other_manager).get(url).content.decode()


def test_clerk_cannot_edit_another_stores_phone(other_clerk, store):
    member = make_member(store)
    client = signed_in(other_clerk)
    page = client.get(reverse("console:member_edit", args=[member.pk])).content.decode()
    assert 'name="phone"' not in page
    assert 'name="allergies"' not in page
    # A forged phone field is ignored: only the offered fields reach member_update.
    response = client.post(
        reverse("console:member_edit", args=[member.pk]),
        {"name": "张三", "phone": "13800138000", "gender": "M", "birthday": "1975-03-02"},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.phone != "13800138000"


def test_terminal_page_scoped_for_store_manager(manager, store, other_store):
    from carecard.chain import services as chain_services

    own, _token = chain_services.terminal_create(actor=None, store=store, code="OWN-1")
    other, _token2 = chain_services.terminal_create(actor=None, store=other_store, code="OTH-1")
    client = signed_in(manager)
    page = client.get(reverse("console:terminals")).content.decode()
    assert "OWN-1" in page
    assert "OTH-1" not in page
    response = client.post(reverse("console:terminal_revoke", args=[other.pk]))
    assert response.status_code == 403
    other.refresh_from_db()
    assert other.revoked_at is None

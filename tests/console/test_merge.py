"""Duplicates review: merge or dismiss (M-2)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.members.models import Card, DuplicateDismissal, MemberStatus
from tests.console.conftest import signed_in
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db


def pair(store):
    a = make_member(store, name="周芳", birthday="1970-02-03")
    b = make_member(store, name="周芳", birthday="1970-02-03")
    return a, b


def test_duplicates_page_lists_pairs(hq_client, store):
    a, b = pair(store)
    page = hq_client.get(reverse("console:duplicates")).content.decode()
    assert f'data-pair="{a.pk}-{b.pk}"' in page
    assert "同名同生日" in page


def test_merge_keeps_the_chosen_member(hq_client, hq_admin, store):
    a, b = pair(store)
    response = hq_client.post(
        reverse("console:duplicate_merge"), {"a": a.pk, "b": b.pk, "survivor": b.pk}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("console:member_detail", args=[b.pk])
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, a.merged_into_id) == (MemberStatus.MERGED, b.pk)
    assert b.status == MemberStatus.ACTIVE
    assert AuditEntry.objects.filter(
        action=AuditAction.MEMBER_MERGE, member_id=b.pk, actor=hq_admin
    ).exists()
    # The absorbed member's cards now belong to the survivor; the pair left the list.
    assert not Card.objects.filter(member=a).exists()
    page = hq_client.get(reverse("console:duplicates")).content.decode()
    assert f'data-pair="{a.pk}-{b.pk}"' not in page
    assert (
        'data-testid="merged-banner"'
        in hq_client.get(reverse("console:member_detail", args=[a.pk])).content.decode()
    )


def test_merge_without_a_survivor_changes_nothing(hq_client, store):
    a, b = pair(store)
    response = hq_client.post(reverse("console:duplicate_merge"), {"a": a.pk, "b": b.pk})
    assert response.status_code == 302
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == b.status == MemberStatus.ACTIVE


def test_dismiss_removes_the_pair(hq_client, store):
    a, b = pair(store)
    response = hq_client.post(
        reverse("console:duplicate_dismiss"),
        {"a": a.pk, "b": b.pk},
        headers={"HX-Request": "true", "HX-Target": "pairs"},
    )
    assert response["HX-Location"]
    assert DuplicateDismissal.objects.filter(member_a=a, member_b=b).exists()
    page = hq_client.get(reverse("console:duplicates")).content.decode()
    assert 'data-testid="no-duplicates"' in page


def test_clerk_cannot_merge(clerk_client, store):
    a, b = pair(store)
    response = clerk_client.post(
        reverse("console:duplicate_merge"), {"a": a.pk, "b": b.pk, "survivor": a.pk}
    )
    assert response.status_code == 403
    b.refresh_from_db()
    assert b.status == MemberStatus.ACTIVE


def test_store_manager_only_reviews_pairs_of_their_store(store, other_store):
    a, b = pair(other_store)
    manager = make_staff(Role.STORE_MANAGER, store)
    client = signed_in(manager)
    page = client.get(reverse("console:duplicates")).content.decode()
    assert f'data-pair="{a.pk}-{b.pk}"' not in page
    response = client.post(
        reverse("console:duplicate_merge"), {"a": a.pk, "b": b.pk, "survivor": a.pk}
    )
    assert response.status_code == 403
    b.refresh_from_db()
    assert b.status == MemberStatus.ACTIVE

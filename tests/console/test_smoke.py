"""Every console page renders for the roles that may open it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_member

pytestmark = pytest.mark.django_db


def test_hq_pages_render(hq_client, store, hq_admin):
    member = make_member(store, address="上海市浦东新区张江镇碧云路1号")
    for name, args in [
        ("console:home", []),
        ("console:member_search", []),
        ("console:member_enrol", []),
        ("console:member_detail", [member.pk]),
        ("console:member_edit", [member.pk]),
        ("console:member_health", [member.pk]),
        ("console:duplicates", []),
        ("console:stores", []),
        ("console:store_detail", [store.pk]),
        ("console:staff", []),
        ("console:staff_new", []),
        ("console:staff_edit", [hq_admin.pk]),
        ("console:terminals", []),
        ("console:audit", []),
    ]:
        response = hq_client.get(reverse(name, args=args))
        assert response.status_code == 200, name


def test_home_quick_search_answers_with_the_results_fragment(clerk_client, store):
    member = make_member(store, name="曾小贤")
    response = clerk_client.get(
        reverse("console:member_search"),
        {"q": "zxx"},
        headers={"HX-Request": "true", "HX-Target": "home-results"},
    )
    page = response.content.decode()
    assert "<html" not in page
    assert f'data-member-no="{member.member_no}"' in page


def test_pending_member_shows_the_banner(clerk_client, store):
    from carecard.members.models import EntryRule
    from carecard.members.services import policy_get

    policy = policy_get()
    policy.entry_rule = EntryRule.PAID
    policy.save()
    member = make_member(store)
    assert member.status == "pending"
    page = clerk_client.get(reverse("console:member_detail", args=[member.pk])).content.decode()
    assert 'data-testid="pending-banner"' in page

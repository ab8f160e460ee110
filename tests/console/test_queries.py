"""Query budgets: list and search pages issue a fixed number of statements, however many rows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from carecard.chain import services as chain_services
from carecard.core.roles import Role
from tests.factories import make_member, make_staff, make_store

pytestmark = pytest.mark.django_db


SUFFIX = "一二三四五六七八九十"


def many_members(store, n):
    return [
        make_member(store, name=f"王明{SUFFIX[i % 10]}", address=f"上海市浦东新区张江镇{i}号")
        for i in range(n)
    ]


@pytest.mark.parametrize(("q", "rows"), [("王", 16), ("wm", 16), ("", 8)])
def test_member_search_query_budget(
    clerk_client, store, other_store, q, rows, django_assert_max_num_queries
):
    many_members(store, 8)
    many_members(other_store, 8)
    # session + user + lookup (+ pinyin keys) + stores in bulk
    with django_assert_max_num_queries(6):
        response = clerk_client.get(
            reverse("console:member_search"),
            {"q": q},
            headers={"HX-Request": "true", "HX-Target": "search-results"},
        )
    assert response.status_code == 200
    # An empty query lists the clerk's own store's recent members; a search covers the chain.
    assert response.content.decode().count('data-testid="result-row"') == rows


def test_member_search_by_phone_tail_and_name(clerk_client, store, django_assert_max_num_queries):
    member = make_member(store, name="曾小贤")
    make_member(store, name="张三")
    with django_assert_max_num_queries(6):
        response = clerk_client.get(
            reverse("console:member_search"), {"q": f"{member.phone[-4:]} 曾"}
        )
    page = response.content.decode()
    assert page.count('data-testid="result-row"') == 1
    assert f'data-member-no="{member.member_no}"' in page


def test_home_query_budget(clerk_client, store, django_assert_max_num_queries):
    many_members(store, 10)
    with django_assert_max_num_queries(6):
        response = clerk_client.get(reverse("console:home"))
    assert response.status_code == 200


def test_member_page_query_budget(clerk_client, store, django_assert_max_num_queries):
    member = make_member(store, card_number="P9990001", consent_marketing=True)
    with django_assert_max_num_queries(10):
        response = clerk_client.get(reverse("console:member_detail", args=[member.pk]))
    assert response.status_code == 200


def _stores_and_staff(n):
    stores = [make_store() for _ in range(n)]
    for s in stores:
        chain_services.zone_upsert(store=s, name="一区", households=100)
        make_staff(Role.CLERK, s)
        make_member(s)
    return stores


@pytest.mark.parametrize(
    ("name", "budget"),
    [
        ("console:stores", 4),
        ("console:staff", 4),
        ("console:terminals", 5),
        ("console:audit", 7),
        ("console:duplicates", 7),
    ],
)
def test_hq_list_query_budgets(hq_client, name, budget, django_assert_max_num_queries):
    stores = _stores_and_staff(6)
    for i, s in enumerate(stores):
        chain_services.terminal_create(actor=None, store=s, code=f"T{i}")
        make_member(s, name="周芳", birthday="1970-02-03")
    with django_assert_max_num_queries(budget):
        response = hq_client.get(reverse(name))
    assert response.status_code == 200


def test_store_detail_query_budget(hq_client, django_assert_max_num_queries):
    store = _stores_and_staff(1)[0]
    for i in range(5):
        chain_services.zone_upsert(store=store, name=f"区{i}", keywords=[f"{i}号"], households=50)
    many_members(store, 6)
    with django_assert_max_num_queries(8):
        response = hq_client.get(reverse("console:store_detail", args=[store.pk]))
    assert response.content.decode().count('data-testid="zone-row"') == 6

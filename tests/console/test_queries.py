"""Query budgets: list and search pages issue a fixed number of statements, however many rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from carecard.chain import services as chain_services
from carecard.core.roles import Role
from carecard.coupons import services as coupon_services
from carecard.loyalty import services as points_services
from carecard.loyalty.models import Reward, RewardKind
from carecard.loyalty.rewards import reward_redeem
from carecard.wallet import services as wallet_services
from tests.console.benefit_fixtures import make_template
from tests.console.conftest import signed_in
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


# --- the member page's coupons, stored value and rewards sections --------------------------------


@pytest.fixture
def benefits(store, other_store):
    """A member with many coupons (usable and expired), stored-value entries, points, a
    catalogue with store-restricted and seasonal rewards, and past redemptions."""
    member = make_member(store, name="王秀英")
    manager = make_staff(Role.STORE_MANAGER, store)
    template = make_template(valid_days=30)
    short = make_template(name="三日券", valid_days=3)
    for i in range(6):
        coupon_services.coupon_issue(template=template, member=member)
        coupon_services.coupon_issue(template=short, member=member, at=_days_ago(10 + i))
    for _i in range(8):
        wallet_services.wallet_topup(
            member_id=member.pk, amount=Decimal("10.00"), tender="cash", store_id=store.pk
        )
    points_services.points_adjust(member_id=member.pk, points=5000, reason="补录", actor=manager)
    for i in range(8):
        Reward.objects.create(
            name=f"礼品{i}",
            kind=RewardKind.GIFT,
            points=10 + i,
            stock=5,
            store_ids=[other_store.pk] if i % 2 else [],
            months=[1, 12] if i % 3 == 0 else [],
        )
    for reward in Reward.objects.filter(store_ids=[], months=[])[:3]:
        reward_redeem(member=member, reward=reward, store_id=store.pk, actor=manager)
    return member


def _days_ago(n):
    return timezone.now() - dt.timedelta(days=n)


@pytest.mark.parametrize(
    ("section", "budget", "rows"),
    [
        # session, user, member, usable / used / expired coupons, issuable templates
        ("coupons", 7, ("coupon-row", 6)),
        # session, user, member, home store, policy ×2, account, real name, bonus tiers ×2,
        # bonus used since the last refund (2), entries
        ("wallet", 13, ("wallet-entry", 8)),
        # session, user, member, home store, points account + lots, catalogue, restricted
        # stores, redemptions
        ("rewards", 9, ("reward-row", 8)),
    ],
)
def test_member_benefit_sections_query_budget(
    store, benefits, section, budget, rows, django_assert_max_num_queries
):
    client = signed_in(make_staff(Role.STORE_MANAGER, store))
    with django_assert_max_num_queries(budget):
        response = client.get(
            reverse(f"console:member_{section}", args=[benefits.pk]),
            headers={"HX-Request": "true", "HX-Target": f"member-{section}"},
        )
    assert response.status_code == 200
    testid, count = rows
    assert response.content.decode().count(f'data-testid="{testid}"') == count


def test_member_coupon_tabs_query_budget(store, benefits, django_assert_max_num_queries):
    client = signed_in(make_staff(Role.CLERK, store))
    for tab, count in (("used", 0), ("expired", 6)):
        with django_assert_max_num_queries(6):
            response = client.get(
                reverse("console:member_coupons", args=[benefits.pk]) + f"?tab={tab}",
                headers={"HX-Request": "true", "HX-Target": "member-coupons"},
            )
        assert response.content.decode().count('data-testid="coupon-row"') == count

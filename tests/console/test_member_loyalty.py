"""The member page's points, tier and sales sections, and manual points adjustments (P-5..P-7,
T-1)."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest / counter_fixtures

from __future__ import annotations

import datetime as dt

import pytest

from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.loyalty import services as points_services
from carecard.loyalty.models import PointsAccount, PointsEntry, PointsLot, PointsProgram, Tier
from tests.console.conftest import signed_in
from tests.console.counter_fixtures import (  # noqa: F401 — fixtures
    PLAIN_DAY,
    D,
    catalog,
    frozen,
    member,
    sell,
    wangqu,
)
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def points_url(member):
    return f"/members/{member.pk}/points/"


def adjust_url(member):
    return f"/members/{member.pk}/points/adjust/"


@pytest.fixture
def history(store, member, catalog, wangqu):
    """Two plain-day sales, 19 and 2 days ago; the program keeps points pending for 7 days."""
    PointsProgram.objects.create(pending_days=7, expiry_policy="year_end")
    first = sell(
        store,
        member,
        [("P-COLD", 2)],
        [("cash", "49.00")],
        key="s1",
        at=PLAIN_DAY - dt.timedelta(days=19),
    )
    second = sell(
        store,
        member,
        [("P-VITC", 1)],
        [("cash", "39.20")],
        key="s2",
        at=PLAIN_DAY - dt.timedelta(days=2),
    )
    return first, second


def test_member_page_loads_the_sections(clerk_client, member):
    page = clerk_client.get(f"/members/{member.pk}/").content.decode()
    assert f'hx-get="/members/{member.pk}/points/" hx-trigger="load"' in page
    assert f'hx-get="/members/{member.pk}/sales/" hx-trigger="load"' in page
    assert f'hx-get="/members/{member.pk}/tier/" hx-trigger="load"' in page


def test_points_summary_lots_and_ledger(clerk_client, member, history, frozen):
    first, second = history
    response = clerk_client.get(points_url(member), headers={**HX, "HX-Target": "member-points"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    summary = response.context["summary"]
    # 49 available (earned 19 days ago); 39 still pending (2 days ago, 7 pending days).
    assert (summary.balance, summary.available, summary.pending, summary.debt) == (88, 49, 39, 0)
    assert 'data-testid="points-balance">88<' in page
    assert 'data-testid="points-available">49<' in page
    assert 'data-testid="points-pending">39<' in page
    assert page.count('data-testid="lot-row"') == 2
    assert "2026-12-31" in page  # year-end expiry
    assert "待生效" in page
    rows = response.context["ledger"]
    assert [(r["e"].points, r["e"].balance_after, r["sale_id"]) for r in rows] == [
        (39, 88, second.pk),
        (49, 49, first.pk),
    ]
    assert "每1元积1分：积分基数 ¥39.20 → 39 分，共 39 分" in page
    assert f'href="/sales/{second.pk}/"' in page
    # A clerk holds no points.adjust permission: no form.
    assert 'data-testid="points-adjust"' not in page


def test_expiring_soon_shows_the_date(clerk_client, store, member, catalog, wangqu, frozen):
    PointsProgram.objects.create(expiry_policy="rolling_months", expiry_months=1)
    sell(
        store,
        member,
        [("P-COLD", 2)],
        [("cash", "49.00")],
        key="e1",
        at=PLAIN_DAY - dt.timedelta(days=19),
    )
    lot = PointsLot.objects.get()
    assert lot.expires_on == dt.date(2026, 3, 6)  # a month after 2026-02-06
    page = clerk_client.get(points_url(member)).content.decode()
    assert 'data-testid="points-expiring">49<' in page
    assert "2026-03-06 到期" in page


def test_ledger_is_paginated(clerk_client, store, member, frozen, django_assert_max_num_queries):
    manager = make_staff(Role.STORE_MANAGER, store)
    for i in range(12):
        points_services.points_adjust(
            member_id=member.pk, points=i + 1, reason=f"补录{i + 1}", actor=manager
        )
    response = clerk_client.get(points_url(member), headers={**HX, "HX-Target": "points-ledger"})
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="points-ledger">')
    assert page.count('data-testid="ledger-row"') == 10
    assert "补录12" in page
    assert "补录3" in page
    assert "补录2<" not in page
    assert 'data-testid="ledger-next"' in page
    with django_assert_max_num_queries(5):
        second = clerk_client.get(
            points_url(member) + "?page=2", headers={**HX, "HX-Target": "points-ledger"}
        )
    assert second.content.decode().count('data-testid="ledger-row"') == 2


def test_points_section_query_budget(
    clerk_client, member, history, frozen, django_assert_max_num_queries
):
    # session, user, member, ledger page, lots, account + lots for the summary
    with django_assert_max_num_queries(7):
        response = clerk_client.get(
            points_url(member), headers={**HX, "HX-Target": "member-points"}
        )
    assert response.status_code == 200


# --- manual adjustments ------------------------------------------------------------------------


@pytest.fixture
def manager_client(store):
    return signed_in(make_staff(Role.STORE_MANAGER, store))


def test_manager_sees_the_form_and_adjusts(manager_client, member, frozen):
    page = manager_client.get(points_url(member)).content.decode()
    assert 'data-testid="points-adjust"' in page
    response = manager_client.post(
        adjust_url(member),
        {"direction": "add", "points": "50", "reason": "系统故障补录"},
        headers={**HX, "HX-Target": "member-points"},
    )
    assert response.status_code == 200
    assert response["HX-Location"] == f'{{"path": "/members/{member.pk}/"}}'
    entry = PointsEntry.objects.get()
    assert (entry.kind, entry.points, entry.balance_after, entry.reason) == (
        "adjust",
        50,
        50,
        "系统故障补录",
    )
    audit = AuditEntry.objects.get(action=AuditAction.POINTS_ADJUST)
    assert audit.detail == {"points": 50, "reason": "系统故障补录", "balance": 50}
    response = manager_client.post(
        adjust_url(member), {"direction": "deduct", "points": "20", "reason": "重复补录冲回"}
    )
    assert response.status_code == 302
    assert PointsAccount.objects.get(pk=member.pk).balance == 30


def test_reason_is_required_and_nothing_is_written(manager_client, member, frozen):
    response = manager_client.post(
        adjust_url(member),
        {"direction": "add", "points": "50", "reason": "  "},
        headers={**HX, "HX-Target": "member-points"},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert 'data-testid="error-reason">请填写调整原因<' in page
    assert 'value="50"' in page  # what was typed is kept
    assert not PointsEntry.objects.exists()
    assert not PointsAccount.objects.filter(pk=member.pk, balance__gt=0).exists()
    assert not AuditEntry.objects.filter(action=AuditAction.POINTS_ADJUST).exists()


@pytest.mark.parametrize("raw", ["0", "-5", "abc", ""])
def test_points_must_be_a_positive_whole_number(manager_client, member, frozen, raw):
    response = manager_client.post(
        adjust_url(member), {"direction": "add", "points": raw, "reason": "补录"}
    )
    assert response.status_code == 422
    assert "请输入大于 0 的整数积分" in response.content.decode()
    assert not PointsEntry.objects.exists()


def test_deducting_more_than_available_is_refused(manager_client, member, frozen):
    response = manager_client.post(
        adjust_url(member), {"direction": "deduct", "points": "10", "reason": "冲回"}
    )
    assert response.status_code == 422
    assert "可用积分不足：需要 10，可用 0" in response.content.decode()
    assert not PointsEntry.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditAction.POINTS_ADJUST).exists()


def test_clerk_cannot_adjust(clerk_client, member, frozen):
    response = clerk_client.post(
        adjust_url(member), {"direction": "add", "points": "50", "reason": "试试"}
    )
    assert response.status_code == 403
    assert not PointsEntry.objects.exists()


def test_manager_of_another_store_cannot_adjust(other_store, member, frozen):
    client = signed_in(make_staff(Role.STORE_MANAGER, other_store))
    assert 'data-testid="points-adjust"' not in client.get(points_url(member)).content.decode()
    response = client.post(adjust_url(member), {"direction": "add", "points": "5", "reason": "x"})
    assert response.status_code == 403
    assert not PointsEntry.objects.exists()


def test_hq_admin_adjusts_any_member(hq_client, member, frozen):
    response = hq_client.post(
        adjust_url(member), {"direction": "add", "points": "8", "reason": "总部补偿"}
    )
    assert response.status_code == 302
    assert PointsEntry.objects.get().actor.role == Role.HQ_ADMIN


def test_adjust_page_in_english(manager_client, member, frozen):
    manager_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    response = manager_client.post(adjust_url(member), {"direction": "add", "points": "5"})
    assert "Enter the reason for the adjustment" in response.content.decode()


# --- tier ----------------------------------------------------------------------------------------


@pytest.fixture
def tiers(db):
    Tier.objects.create(code="ordinary", name="普通卡", rank=0, threshold=0)
    Tier.objects.create(
        code="silver", name="银卡", rank=1, threshold=100, benefits="每周二双倍积分"
    )
    Tier.objects.create(code="gold", name="金卡", rank=2, threshold=1000)


def test_tier_current_since_and_progress(
    clerk_client, store, member, catalog, wangqu, tiers, frozen
):
    sell(store, member, [("P-COLD", 2), ("P-VITC", 1)], [("cash", "88.20")], key="t1")
    response = clerk_client.get(
        f"/members/{member.pk}/tier/", headers={**HX, "HX-Target": "member-tier"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="tier-name">普通卡<' in page
    assert "2026-02-25 起" in page
    assert "升级到 银卡" in page
    assert "88 分 / 100 分" in page
    assert 'data-testid="tier-remaining">累计获得积分还差 12 分' in page
    assert response.context["standing"].percent == 88
    sell(store, member, [("P-COLD", 1)], [("cash", "24.50")], key="t2")
    page = clerk_client.get(f"/members/{member.pk}/tier/").content.decode()
    assert 'data-testid="tier-name">银卡<' in page
    assert "每周二双倍积分" in page
    assert "普通卡 → <strong>银卡</strong>" in page


def test_tier_before_the_first_purchase(clerk_client, member, tiers, frozen):
    page = clerk_client.get(f"/members/{member.pk}/tier/").content.decode()
    assert 'data-testid="tier-name">普通卡<' in page
    assert "首次消费后定级" in page


def test_no_tiers_configured(clerk_client, member):
    page = clerk_client.get(f"/members/{member.pk}/tier/").content.decode()
    assert "总部尚未设置会员等级" in page


# --- sales ---------------------------------------------------------------------------------------


def test_sales_and_returns_newest_first(clerk_client, store, member, history, frozen):
    first, second = history
    clerk_client.post(f"/sales/{first.pk}/return/", {"key": "ret", "qty_1": "1"})
    response = clerk_client.get(
        f"/members/{member.pk}/sales/", headers={**HX, "HX-Target": "member-sales"}
    )
    page = response.content.decode()
    sales = response.context["sales"]
    assert [s.kind for s in sales] == ["return", "sale", "sale"]
    assert [s.net_total for s in sales] == [D("24.50"), D("39.20"), D("49.00")]
    assert page.count('data-testid="sale-row"') == 3
    assert 'data-testid="sale-net">−¥24.50<' in page
    assert 'data-testid="sale-points">−25<' in page
    assert 'data-testid="sale-points">+39<' in page
    assert f'href="/sales/{second.pk}/"' in page


def test_sales_query_budget(
    clerk_client, store, member, catalog, wangqu, frozen, django_assert_max_num_queries
):
    for i in range(12):
        sell(store, member, [("P-COLD", 1)], [("cash", "24.50")], key=f"q{i}")
    other = make_member(store, name="李四")
    sell(store, other, [("P-COLD", 1)], [("cash", "24.50")], key="other")
    # session, user, member, one page of sales with their stores
    with django_assert_max_num_queries(4):
        response = clerk_client.get(
            f"/members/{member.pk}/sales/", headers={**HX, "HX-Target": "member-sales"}
        )
    assert response.content.decode().count('data-testid="sale-row"') == 10
    assert 'data-testid="sales-next"' in response.content.decode()


def test_unknown_member_is_404(clerk_client, db):
    for section in ("points", "tier", "sales"):
        assert clerk_client.get(f"/members/999999/{section}/").status_code == 404

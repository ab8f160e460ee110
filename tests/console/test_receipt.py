"""The receipt page (C-4) and returns taken from it (C-6)."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest / counter_fixtures

from __future__ import annotations

import datetime as dt

import pytest

from carecard.checkout.models import Sale, SaleKind, SaleLine
from carecard.core.models import IdempotencyRecord
from carecard.core.roles import Role
from carecard.loyalty.models import PointsAccount, PointsEntry
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
from tests.factories import make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def sale(store, member, catalog, wangqu, clerk):
    # 2 × 感冒灵 (49.00 after 9.8折) + 维生素C (39.20); half by insurance, the rest cash.
    return sell(
        store,
        member,
        [("P-COLD", 2), ("P-VITC", 1)],
        [("insurance_pool", "20.00"), ("cash", "68.20")],
        staff=clerk,
    )


def url(sale):
    return f"/sales/{sale.pk}/"


def return_url(sale):
    return f"/sales/{sale.pk}/return/"


def test_receipt_shows_lines_discounts_tenders_and_points(clerk_client, sale, member, frozen):
    response = clerk_client.get(url(sale))
    assert response.status_code == 200
    page = response.content.decode()
    assert sale.receipt_no in page
    assert page.count('data-testid="receipt-line"') == 2
    assert page.count('data-testid="receipt-discount"') == 2
    assert "└ 会员折扣 9.8折" in page
    assert 'data-testid="receipt-line-net">49.00<' in page
    assert 'data-testid="receipt-line-net">39.20<' in page
    assert 'data-testid="receipt-net">¥88.20<' in page
    assert 'data-testid="tender-cash">¥68.20<' in page
    assert 'data-testid="tender-insurance_pool">¥20.00<' in page
    # Points on the self-paid 68.20 only; the balance after the sale.
    assert 'data-testid="receipt-points-earned">+68<' in page
    assert 'data-testid="receipt-points-balance">68<' in page
    # Printed and handed over: the phone is masked even for the member's own store.
    assert "139****5678" in page
    assert "13912345678" not in page
    assert 'data-testid="receipt-print"' in page
    assert "window.print()" in page
    assert "@media print" not in page  # the print layout lives in console.css
    assert 'data-testid="return-card"' in page
    assert "可退至 2026-03-27" in page


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.MARKETING])
def test_hq_readers_see_the_receipt_but_cannot_return(sale, role):
    client = signed_in(make_staff(role))
    page = client.get(url(sale)).content.decode()
    assert sale.receipt_no in page
    assert 'data-testid="return-card"' not in page
    response = client.post(return_url(sale), {"key": "r1", "qty_1": "1"})
    assert response.status_code == 403
    assert Sale.objects.count() == 1


def test_hq_admin_without_store_cannot_return(hq_client, sale):
    assert 'data-testid="return-card"' not in hq_client.get(url(sale)).content.decode()
    assert hq_client.post(return_url(sale), {"key": "r1", "qty_1": "1"}).status_code == 403
    assert Sale.objects.count() == 1


def test_unknown_receipt_is_404(clerk_client, db):
    assert clerk_client.get("/sales/999999/").status_code == 404


def test_partial_return_redirects_to_the_return_receipt(clerk, clerk_client, sale, member, frozen):
    response = clerk_client.post(return_url(sale), {"key": "r1", "qty_1": "1", "qty_2": "0"})
    ret = Sale.objects.get(kind=SaleKind.RETURN)
    assert response.status_code == 302
    assert response["Location"] == f"/sales/{ret.pk}/"
    assert (ret.original_sale_id, ret.store_id, ret.staff_id) == (
        sale.pk,
        clerk.home_store_id,
        clerk.pk,
    )
    assert ret.net_total == D("24.50")
    line = SaleLine.objects.get(sale=sale, line_no=1)
    assert line.returned_quantity == 1
    page = clerk_client.get(response["Location"]).content.decode()
    assert "已退货：退货单" in page
    assert 'data-testid="refund-summary"' in page
    assert 'data-testid="receipt-net">¥24.50<' in page
    # 感冒灵 earned 38 of the 68 points (its share of the self-paid amount): half come back.
    assert ret.points_earned == -19
    assert 'data-testid="receipt-points-reversed">−19<' in page
    assert 'data-testid="return-card"' not in page  # a return is not returned again
    account = PointsAccount.objects.get(pk=member.pk)
    assert account.balance == 68 + ret.points_earned
    assert ret.points_balance == account.balance
    # The original receipt now lists the return and what is left to return.
    original = clerk_client.get(url(sale)).content.decode()
    assert ret.receipt_no in original
    assert "已退 1" in original
    assert "可退 1 / 共 2" in original


def test_double_submit_replays_the_first_return(clerk_client, sale, frozen):
    data = {"key": "r-same", "qty_1": "1"}
    first = clerk_client.post(return_url(sale), data)
    second = clerk_client.post(return_url(sale), data)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Sale.objects.filter(kind=SaleKind.RETURN).count() == 1
    assert SaleLine.objects.get(sale=sale, line_no=1).returned_quantity == 1
    assert PointsEntry.objects.filter(kind="reverse").count() == 1


def test_returning_more_than_sold_is_refused_in_chinese(clerk_client, sale, member, frozen):
    before = PointsAccount.objects.get(pk=member.pk).balance
    response = clerk_client.post(
        return_url(sale),
        {"key": "r2", "qty_1": "3"},
        headers={"HX-Request": "true", "HX-Target": "return-form"},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "可退数量为 2" in page
    assert 'data-testid="return-line-error"' in page
    assert 'data-testid="return-card"' in page
    assert "<html" not in page  # the return form partial only
    assert Sale.objects.count() == 1
    assert SaleLine.objects.get(sale=sale, line_no=1).returned_quantity == 0
    assert PointsAccount.objects.get(pk=member.pk).balance == before
    assert not IdempotencyRecord.objects.filter(scope__startswith="staff:").exists()


def test_nothing_chosen_is_refused(clerk_client, sale, frozen):
    response = clerk_client.post(return_url(sale), {"key": "r3", "qty_1": "0", "qty_2": "0"})
    assert response.status_code == 422
    assert "请选择要退的商品" in response.content.decode()
    assert Sale.objects.count() == 1


def test_bad_quantity_is_refused(clerk_client, sale, frozen):
    response = clerk_client.post(return_url(sale), {"key": "r3", "qty_1": "x"})
    assert response.status_code == 422
    assert "数量应为不小于 0 的整数" in response.content.decode()
    assert Sale.objects.count() == 1


def test_return_window_passed(clerk_client, store, member, catalog, wangqu, frozen):
    old = sell(
        store,
        member,
        [("P-COLD", 1)],
        [("cash", "24.50")],
        at=PLAIN_DAY - dt.timedelta(days=45),  # 2026-01-11, lunar 十一月廿三
        key="old",
    )
    page = clerk_client.get(url(old)).content.decode()
    assert 'data-testid="return-closed"' in page
    assert "已超过退货期限（2026-02-10），不能退货。" in page
    response = clerk_client.post(return_url(old), {"key": "r4", "qty_1": "1"})
    assert response.status_code == 422
    assert "已超过 30 天退货期限" in response.content.decode()
    assert Sale.objects.count() == 1
    assert SaleLine.objects.get(sale=old).returned_quantity == 0


def test_walk_in_receipt_has_no_points(clerk_client, store, catalog, wangqu, frozen):
    walk_in = sell(store, None, [("P-COLD", 1)], [("cash", "25.00")], key="walk")
    page = clerk_client.get(url(walk_in)).content.decode()
    assert 'data-testid="receipt-points"' not in page
    assert 'data-testid="receipt-net">¥25.00<' in page


def test_receipt_query_budget(clerk_client, sale, frozen, django_assert_max_num_queries):
    # session, user, sale + lines + discounts + tenders + returns, settings
    with django_assert_max_num_queries(9):
        response = clerk_client.get(url(sale))
    assert response.status_code == 200

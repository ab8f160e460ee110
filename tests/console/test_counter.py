"""The counter page (收银台): who may sell, scanning, the live quote, tenders, and the commit
that replays on a double submit (C-1, C-2, C-4a)."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest / counter_fixtures

from __future__ import annotations

import pytest

from carecard.checkout.models import Sale, SaleLine, SaleTender
from carecard.core.models import IdempotencyRecord
from carecard.core.roles import Role
from carecard.loyalty.models import PointsAccount, PointsEntry
from tests.console.conftest import signed_in
from tests.console.counter_fixtures import (  # noqa: F401 — fixtures
    D,
    catalog,
    frozen,
    member,
    wangqu,
)
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db

URL = "/counter/"
HX = {"HX-Request": "true", "HX-Target": "counter-form"}


def post(client, data, *, htmx=True):
    return client.post(URL, data, headers=HX if htmx else {})


def basket(member=None, **extra):
    data = {"key": "key-1", "sku": ["P-COLD", "P-VITC"], "qty": ["2", "1"]}
    if member is not None:
        data["member_id"] = str(member.pk)
    data.update(extra)
    return data


# --- who may use it ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.CLERK, Role.PHARMACIST, Role.STORE_MANAGER])
def test_store_roles_open_the_counter_with_a_fresh_key(store, role):
    client = signed_in(make_staff(role, store))
    first = client.get(URL)
    second = client.get(URL)
    assert first.status_code == 200
    page = first.content.decode()
    assert "收银台" in page
    assert store.name in page
    assert 'data-testid="counter-scan"' in page
    assert 'data-testid="nav-counter"' in page
    # Each rendering of the page starts a new sale: a new idempotency key.
    assert first.context["f"].key != second.context["f"].key
    assert len(first.context["f"].key) == 32


@pytest.mark.parametrize("role", [Role.MARKETING, Role.AUDITOR])
def test_other_hq_roles_get_403(role):
    client = signed_in(make_staff(role))
    assert client.get(URL).status_code == 403
    assert post(client, basket(commit="1")).status_code == 403
    assert not Sale.objects.exists()


def test_hq_admin_without_a_store_sees_why_and_cannot_post(hq_client, catalog, wangqu):
    response = hq_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="counter-no-store"' in page
    assert "您的账号没有所属门店，不能在此收银。" in page
    assert 'data-testid="counter-form"' not in page
    assert 'data-testid="nav-counter"' not in page  # the nav offers it to store roles only
    assert post(hq_client, basket(commit="1")).status_code == 403
    assert not Sale.objects.exists()


def test_anonymous_is_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- basket and quote ----------------------------------------------------------------------------


def test_scan_by_sku_and_by_barcode_merges_lines(clerk_client, catalog, wangqu, frozen):
    catalog["vitc"].barcode = "6901234567892"
    catalog["vitc"].save()
    response = post(clerk_client, {"key": "k", "add": "P-COLD", "add_qty": "2"})
    assert response.status_code == 200
    assert [(r.sku, r.qty_raw) for r in response.context["rows"]] == [("P-COLD", "2")]
    response = post(
        clerk_client,
        {"key": "k", "sku": ["P-COLD"], "qty": ["2"], "add": "6901234567892", "add_qty": "1"},
    )
    assert [r.sku for r in response.context["rows"]] == ["P-COLD", "P-VITC"]
    response = post(
        clerk_client,
        {"key": "k", "sku": ["P-COLD", "P-VITC"], "qty": ["2", "1"], "add": "P-COLD"},
    )
    rows = response.context["rows"]
    assert [(r.sku, r.qty_raw) for r in rows] == [("P-COLD", "3"), ("P-VITC", "1")]
    page = response.content.decode()
    # A partial: the form only, not the whole page.
    assert page.lstrip().startswith("<form")
    assert page.count('data-testid="basket-line"') == 2
    assert response.context["f"].add_code == ""


def test_unknown_code_is_refused_in_chinese_and_the_basket_kept(clerk_client, catalog, frozen):
    response = post(clerk_client, {"key": "k", "sku": ["P-COLD"], "qty": ["1"], "add": "X-404"})
    assert response.status_code == 200
    assert "没有找到商品：X-404" in response.content.decode()
    assert [r.sku for r in response.context["rows"]] == ["P-COLD"]


def test_quote_shows_base_discount_reasons_totals_and_points(
    clerk_client, member, catalog, wangqu, frozen
):
    response = post(clerk_client, basket(member))
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r.priced.original, r.priced.discount_total, r.priced.net) for r in rows] == [
        (D("50.00"), D("1.00"), D("49.00")),
        (D("40.00"), D("0.80"), D("39.20")),
    ]
    assert [r.earning.points for r in rows] == [49, 39]
    page = response.content.decode()
    assert page.count('data-testid="line-discount"') == 2
    assert "会员折扣 9.8折" in page
    assert 'data-testid="total-net">¥88.20<' in page
    assert 'data-testid="total-discount">−¥1.80<' in page
    assert 'data-testid="points-to-earn">88<' in page
    # Blank cash takes the rest: the sale can be committed as it stands.
    assert response.context["pay"].cash == D("88.20")
    assert 'data-testid="pay-cash">¥88.20<' in page
    assert "金额已齐" in page


def test_walk_in_pays_shelf_price_and_earns_nothing(clerk_client, catalog, wangqu, frozen):
    response = post(clerk_client, basket())
    assert response.context["quote"].basket.net == D("90.00")
    assert 'data-testid="counter-points"' not in response.content.decode()


def test_member_search_as_you_type_and_pick(clerk_client, member, catalog, wangqu, frozen):
    response = clerk_client.get(
        URL,
        {"member_q": "5678 王"},
        headers={"HX-Request": "true", "HX-Target": "counter-member-results"},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('data-testid="counter-member-pick"') == 1
    assert f'value="{member.pk}"' in page
    response = post(clerk_client, basket(pick_member=str(member.pk)))
    page = response.content.decode()
    assert 'data-testid="counter-member-selected"' in page
    assert f'data-member-no="{member.member_no}"' in page
    assert "13912345678" in page  # a clerk of the member's own store sees the phone
    response = post(clerk_client, basket(member, clear_member="1"))
    assert response.context["member"] is None


def test_insurance_tender_earns_no_points(clerk_client, member, catalog, wangqu, frozen):
    response = post(clerk_client, basket(member, t_insurance_pool="30.00"))
    pay = response.context["pay"]
    assert (pay.cash, pay.due) == (D("58.20"), D("0.00"))
    # 88.20 − 30.00 of insurance = 58.20 self-paid → 58 points.
    assert response.context["quote"].earning.total == 58


def test_quantity_errors_stay_on_the_line(clerk_client, catalog, frozen):
    response = post(clerk_client, {"key": "k", "sku": ["P-COLD"], "qty": ["0"], "commit": "1"})
    assert response.status_code == 422
    assert "数量应为 1–9999 的整数" in response.content.decode()
    assert not Sale.objects.exists()


def test_remove_a_line(clerk_client, catalog, frozen):
    response = post(clerk_client, basket(drop="0"))
    assert [r.sku for r in response.context["rows"]] == ["P-VITC"]


# --- commit --------------------------------------------------------------------------------------


def test_commit_records_the_sale_and_redirects_to_its_receipt(
    clerk, clerk_client, member, catalog, wangqu, frozen
):
    response = post(clerk_client, basket(member, commit="1", cash_given="100"))
    sale = Sale.objects.get()
    assert response.status_code == 200
    assert response["HX-Location"] == f'{{"path": "/sales/{sale.pk}/"}}'
    assert (sale.store_id, sale.member_id, sale.staff_id) == (
        clerk.home_store_id,
        member.pk,
        clerk.pk,
    )
    assert (sale.original_total, sale.discount_total, sale.net_total) == (
        D("90.00"),
        D("1.80"),
        D("88.20"),
    )
    assert (sale.points_earned, sale.points_balance) == (88, 88)
    assert list(SaleTender.objects.values_list("kind", "amount")) == [("cash", D("88.20"))]
    assert IdempotencyRecord.objects.get().scope == f"staff:{clerk.pk}"
    receipt = clerk_client.get(f"/sales/{sale.pk}/").content.decode()
    assert "已结算：小票" in receipt


def test_double_submit_replays_the_first_sale(clerk_client, member, catalog, wangqu, frozen):
    first = post(clerk_client, basket(member, commit="1"), htmx=False)
    second = post(clerk_client, basket(member, commit="1"), htmx=False)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Sale.objects.count() == 1
    assert SaleLine.objects.count() == 2
    assert PointsEntry.objects.count() == 1
    assert PointsAccount.objects.get(pk=member.pk).balance == 88


def test_a_code_left_in_the_scan_box_is_added_not_charged(
    clerk_client, member, catalog, wangqu, frozen
):
    response = post(clerk_client, basket(member, add="P-SPEC", commit="1"))
    assert response.status_code == 200
    assert "扫码框中的商品已加入购物篮，请核对金额后再结算。" in response.content.decode()
    assert [r.sku for r in response.context["rows"]] == ["P-COLD", "P-VITC", "P-SPEC"]
    assert not Sale.objects.exists()


def test_reused_key_with_another_basket_starts_a_new_sale(
    clerk_client, member, catalog, wangqu, frozen
):
    post(clerk_client, basket(member, commit="1"))
    response = post(clerk_client, {**basket(member, commit="1"), "qty": ["1", "1"]})
    assert response.status_code == 409
    assert "这一单已经结算过" in response.content.decode()
    assert response.context["f"].key != "key-1"
    assert Sale.objects.count() == 1


def test_tenders_that_do_not_cover_the_net_write_nothing(
    clerk_client, member, catalog, wangqu, frozen
):
    response = post(clerk_client, basket(member, t_cash="50.00", commit="1"))
    assert response.status_code == 422
    assert "支付合计 50.00 与应付 88.20 不符" in response.content.decode()
    assert response.context["pay"].due == D("38.20")
    assert not Sale.objects.exists()
    assert not PointsEntry.objects.exists()


def test_points_beyond_the_balance_are_refused(clerk_client, member, catalog, wangqu, frozen):
    response = post(clerk_client, basket(member, t_points="500", commit="1"))
    assert response.status_code == 422
    assert "可用积分不足" in response.content.decode()
    assert not Sale.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_points_need_a_member(clerk_client, catalog, wangqu, frozen):
    response = post(clerk_client, basket(t_points="100", commit="1"))
    assert response.status_code == 422
    assert "积分抵现需要会员" in response.content.decode()
    assert not Sale.objects.exists()


def test_bad_amount_is_shown_next_to_its_tender(clerk_client, catalog, wangqu, frozen):
    response = post(clerk_client, basket(t_wechat="12.345", commit="1"))
    assert response.status_code == 422
    assert "金额应为不小于 0 的两位小数" in response.content.decode()
    assert not Sale.objects.exists()


def test_cancelled_member_cannot_be_picked(clerk_client, store, catalog, wangqu, frozen):
    gone = make_member(store, name="李四")
    gone.status = "cancelled"
    gone.save(update_fields=["status"])
    response = post(clerk_client, basket(gone))
    assert "会员不存在或已注销" in response.content.decode()
    assert response.context["member"] is None


def test_counter_query_budget(
    clerk_client, member, catalog, wangqu, frozen, django_assert_max_num_queries
):
    # session, user, member, two quotes' reads, points summary, tier standing, products
    with django_assert_max_num_queries(20):
        response = post(clerk_client, basket(member, t_insurance_pool="10.00"))
    assert response.status_code == 200

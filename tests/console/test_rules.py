"""HQ's member rules page (会员规则), preset loading, navigation, and the rules in the admin."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest / counter_fixtures

from __future__ import annotations

from decimal import Decimal

import pytest

from carecard.checkout.models import CheckoutSettings, Sale
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.loyalty.models import EarningPlan, PointsEntry, PointsProgram, PricingRule, Tier
from tests.console.conftest import signed_in
from tests.console.counter_fixtures import catalog, frozen, member, sell, wangqu  # noqa: F401
from tests.factories import make_staff

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.mark.parametrize("role", [Role.HQ_ADMIN, Role.MARKETING, Role.AUDITOR])
def test_hq_roles_read_the_rules_in_plain_chinese(role, wangqu):
    Tier.objects.create(code="ordinary", name="普通卡", rank=0, threshold=0)
    Tier.objects.create(code="silver", name="银卡", rank=1, threshold=5000)
    Tier.objects.create(
        code="gold", name="金卡", rank=2, basis="spend", threshold=3000, window_months=12
    )
    PricingRule.objects.create(name="银卡8.8折", kind="tier", rate=D("0.88"), tiers=["silver"])
    PricingRule.objects.create(name="停用的规则", kind="base", rate=D("0.5"), active=False)
    client = signed_in(make_staff(role))
    response = client.get("/rules/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="nav-rules"' in page
    assert page.count('data-testid="pricing-rule"') == 3
    assert "每月农历初八、十八、廿八" in page
    assert "9.5折" in page
    assert "9.8折" in page
    assert "特价/限量/促销商品除外" in page
    assert "另有 1 条规则未启用" in page
    assert "每消费 ¥1 积 1 分（向下取整）" in page
    assert "医保统筹、医保个人账户和积分抵现支付的部分不积分" in page
    assert "入会即得" in page
    assert "累计获得积分达到 5000 分" in page
    assert "近 12 个月消费满 ¥3000" in page
    assert "8.8折" in page
    assert "30 天内" in page  # return window
    assert "100 分抵 ¥1" in page
    for key in ("wangqu", "four_tier", "rebate_ladder"):
        assert f'data-testid="preset-{key}"' in page
    can_load = role == Role.HQ_ADMIN
    assert ('data-testid="preset-load-wangqu"' in page) is can_load
    assert ("载入预置规则需要总部管理员权限" in page) is not can_load


@pytest.mark.parametrize("role", [Role.CLERK, Role.PHARMACIST, Role.STORE_MANAGER])
def test_store_roles_get_403(store, role):
    client = signed_in(make_staff(role, store))
    response = client.get("/rules/")
    assert response.status_code == 403
    assert 'data-testid="nav-rules"' not in client.get("/").content.decode()


def test_hq_admin_loads_a_preset_and_it_is_audited(hq_admin, hq_client, wangqu):
    response = hq_client.post(
        "/rules/preset/", {"preset": "four_tier"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response["HX-Location"] == '{"path": "/rules/"}'
    names = list(PricingRule.objects.order_by("position").values_list("name", flat=True))
    assert names[:2] == ["周日会员日", "生日8折"]
    assert list(Tier.objects.values_list("code", flat=True)) == [
        "ordinary",
        "silver",
        "gold",
        "platinum",
        "diamond",
    ]
    entry = AuditEntry.objects.get(action=AuditAction.SETTINGS, target="preset:four_tier")
    assert (entry.actor_id, entry.detail["name"]) == (hq_admin.pk, "四级会员制大药房")
    page = hq_client.get("/rules/").content.decode()
    assert "已载入预置规则：四级会员制大药房" in page
    assert "每周日" in page


def test_unknown_preset_changes_nothing(hq_client, wangqu):
    response = hq_client.post("/rules/preset/", {"preset": "nope"})
    assert response.status_code == 302
    assert PricingRule.objects.count() == 2
    assert not AuditEntry.objects.filter(target__startswith="preset:").exists()


@pytest.mark.parametrize("role", [Role.MARKETING, Role.AUDITOR])
def test_only_hq_admin_loads_presets(role, wangqu):
    client = signed_in(make_staff(role))
    assert client.post("/rules/preset/", {"preset": "four_tier"}).status_code == 403
    assert PricingRule.objects.count() == 2
    assert not Tier.objects.exists()


def test_rules_query_budget(hq_client, wangqu, django_assert_max_num_queries):
    for i in range(8):
        PricingRule.objects.create(name=f"规则{i}", kind="base", rate=D("0.9"))
    PointsProgram.objects.create()
    CheckoutSettings.objects.create()
    # session, user, rules, earning plans, tiers, program, settings
    with django_assert_max_num_queries(7):
        response = hq_client.get("/rules/")
    assert response.content.decode().count('data-testid="pricing-rule"') == 10


def test_nav_offers_the_counter_to_store_roles_only(clerk_client, hq_client):
    assert 'data-testid="nav-counter"' in clerk_client.get("/").content.decode()
    page = hq_client.get("/").content.decode()
    assert 'data-testid="nav-counter"' not in page
    assert 'data-testid="nav-rules"' in page


# --- admin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/admin/loyalty/pricingrule/",
        "/admin/loyalty/earningplan/",
        "/admin/loyalty/tier/",
        "/admin/loyalty/pointsprogram/",
        "/admin/loyalty/pointsentry/",
        "/admin/checkout/checkoutsettings/",
        "/admin/checkout/sale/",
    ],
)
def test_admin_pages_open_for_hq_admin(hq_client, wangqu, path):
    response = hq_client.get(path)
    assert response.status_code == 200
    assert "<html" in response.content.decode()


def test_ledger_and_receipts_are_read_only_in_admin(
    hq_client, store, member, catalog, wangqu, frozen
):
    sale = sell(store, member, [("P-COLD", 2)], [("cash", "49.00")])
    entry = PointsEntry.objects.get()
    assert hq_client.get("/admin/loyalty/pointsentry/add/").status_code == 403
    assert hq_client.get("/admin/checkout/sale/add/").status_code == 403
    page = hq_client.get(f"/admin/checkout/sale/{sale.pk}/change/").content.decode()
    assert sale.receipt_no in page
    assert "会员折扣 9.8折" in page  # the line's discount reasons
    assert f'href="/sales/{sale.pk}/"' in page
    hq_client.post(f"/admin/loyalty/pointsentry/{entry.pk}/delete/", {"post": "yes"})
    assert PointsEntry.objects.count() == 1
    assert Sale.objects.count() == 1


def test_singletons_cannot_be_added_twice(hq_client):
    PointsProgram.objects.create()
    CheckoutSettings.objects.create()
    assert hq_client.get("/admin/loyalty/pointsprogram/add/").status_code == 403
    assert hq_client.get("/admin/checkout/checkoutsettings/add/").status_code == 403


def _rule_form(**overrides):
    data = {
        "name": "会员日",
        "kind": "member_day",
        "rate": "0.95",
        "position": "0",
        "active": "on",
        "schedule_kind": "lunar_days",
        "schedule_days": "[8, 18, 28]",
        "schedule_dates": "[]",
        "tiers": "[]",
        "scope": "{}",
        "regions": "[]",
        "funded_by": "hq",
        "legal_basis": "",
    }
    data.update(overrides)
    return data


def test_admin_refuses_a_rule_the_till_could_not_use(hq_client):
    response = hq_client.post("/admin/loyalty/pricingrule/add/", _rule_form(schedule_days="[31]"))
    assert response.status_code == 200
    assert "日期应为 1–30" in response.content.decode()
    response = hq_client.post(
        "/admin/loyalty/pricingrule/add/", _rule_form(scope='{"exclude_klasses": ["rx"]}')
    )
    assert "unknown scope keys" in response.content.decode()
    response = hq_client.post("/admin/loyalty/pricingrule/add/", _rule_form(rate=""))
    assert "该类型需要填写折扣率" in response.content.decode()
    assert not PricingRule.objects.exists()
    response = hq_client.post("/admin/loyalty/pricingrule/add/", _rule_form())
    assert response.status_code == 302
    assert PricingRule.objects.get().schedule_days == [8, 18, 28]


def test_admin_refuses_a_bad_earning_plan(hq_client):
    data = {
        "name": "每1元积1分",
        "amount_per_point": "1.00",
        "rounding": "floor",
        "min_amount": "0",
        "receipt_bonus": "0",
        "position": "0",
        "active": "on",
        "scope": "{}",
        "sku_multipliers": '{"100001": "abc"}',
        "category_multipliers": "{}",
        "tier_multipliers": "{}",
        "day_multipliers": "[]",
        "non_earning_tenders": '["cheque"]',
    }
    response = hq_client.post("/admin/loyalty/earningplan/add/", data)
    page = response.content.decode()
    assert "100001 的倍数不是数字" in page
    assert "应为支付方式编码列表" in page
    assert not EarningPlan.objects.exists()

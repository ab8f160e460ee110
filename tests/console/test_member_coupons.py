"""The member page's coupons section (V-1..V-3): usable, used and expired coupons with their
terms and validity, and issuing one by hand (managers and HQ)."""

# ruff: noqa: F811 — fixtures imported from counter_fixtures / benefit_fixtures

from __future__ import annotations

import datetime as dt

import pytest

from carecard.core.roles import Role
from carecard.coupons import services as coupon_services
from carecard.coupons.models import Coupon, CouponSource, CouponStatus
from carecard.members.models import Member
from tests.console.benefit_fixtures import coupon, make_template, ten_off  # noqa: F401
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

HX = {"HX-Request": "true", "HX-Target": "member-coupons"}


def coupons_url(member, action=""):
    return f"/members/{member.pk}/coupons/{action + '/' if action else ''}"


@pytest.fixture
def manager_client(store):
    return signed_in(make_staff(Role.STORE_MANAGER, store))


@pytest.fixture
def held(store, member, ten_off, catalog, wangqu, frozen):
    """One usable, one not yet valid, one used at the counter, one expired."""
    usable = coupon_services.coupon_issue(template=ten_off, member=member)
    later = make_template(
        name="春季券", valid_from=dt.date(2026, 3, 10), valid_until=dt.date(2026, 3, 31)
    )
    upcoming = coupon_services.coupon_issue(template=later, member=member)
    used = coupon_services.coupon_issue(template=ten_off, member=member)
    from carecard.checkout import services as checkout
    from carecard.checkout.services import LineIn, TenderIn

    sale = checkout.sale_commit(
        scope="t",
        idempotency_key="k-used",
        body={"k": 1},
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-COLD", 2), LineIn("P-VITC", 1)],
        tenders=[TenderIn("cash", D("78.20"))],
        coupons=[used.code],
    ).sale
    old = make_template(name="旧券", valid_days=3)
    expired = coupon_services.coupon_issue(
        template=old, member=member, at=PLAIN_DAY - dt.timedelta(days=10)
    )
    return {"usable": usable, "upcoming": upcoming, "used": used, "expired": expired, "sale": sale}


def test_usable_used_and_expired_tabs(clerk_client, member, held, frozen):
    response = clerk_client.get(coupons_url(member), headers=HX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert response.context["counts"] == {"usable": 2, "used": 1, "expired": 1}
    codes = [r["c"].code for r in response.context["rows"]]
    assert codes == [held["usable"].code, held["upcoming"].code]
    assert "满 ¥50 减 ¥10" in page
    assert "2026-02-25 – 2026-03-26" in page
    assert "2026-03-10 起可用" in page
    assert "手工发放" in page
    assert 'data-testid="coupon-issue"' not in page  # a clerk does not issue by hand

    page = clerk_client.get(coupons_url(member) + "?tab=used", headers=HX).content.decode()
    assert f'data-code="{held["used"].code}" data-status="redeemed"' in page
    assert "−¥10.00" in page
    assert f'href="/sales/{held["sale"].pk}/"' in page

    page = clerk_client.get(coupons_url(member) + "?tab=expired", headers=HX).content.decode()
    assert f'data-code="{held["expired"].code}"' in page
    assert "2026-02-15 – 2026-02-17" in page


def test_manager_issues_a_coupon_by_hand(store, member, ten_off, frozen):
    manager = make_staff(Role.STORE_MANAGER, store)
    client = signed_in(manager)
    page = client.get(coupons_url(member)).content.decode()
    assert 'data-testid="coupon-issue"' in page
    assert f'<option value="{ten_off.pk}">满50减10 · 满 ¥50 减 ¥10</option>' in page
    response = client.post(coupons_url(member, "issue"), {"template": str(ten_off.pk)}, headers=HX)
    assert response.status_code == 200
    assert response["HX-Location"] == f'{{"path": "/members/{member.pk}/"}}'
    issued = Coupon.objects.get()
    assert (issued.member_id, issued.template_id, issued.status, issued.source) == (
        member.pk,
        ten_off.pk,
        CouponStatus.ISSUED,
        CouponSource.MANUAL,
    )
    assert (issued.issued_by_id, issued.issued_store_id) == (manager.pk, store.pk)
    assert (issued.valid_from, issued.valid_until) == (dt.date(2026, 2, 25), dt.date(2026, 3, 26))
    page = client.get(f"/members/{member.pk}/").content.decode()
    assert f"已向 王秀英 发放“满50减10”，券码 {issued.code}" in page


def test_no_template_chosen_is_a_field_error(manager_client, member, ten_off, frozen):
    response = manager_client.post(coupons_url(member, "issue"), {"template": ""}, headers=HX)
    assert response.status_code == 422
    assert 'data-testid="error-template">请选择可发放的券<' in response.content.decode()
    assert not Coupon.objects.exists()


def test_per_member_limit_is_shown_next_to_the_template(manager_client, member, frozen):
    once = make_template(name="新客券", per_member_limit=1)
    coupon_services.coupon_issue(template=once, member=member)
    response = manager_client.post(coupons_url(member, "issue"), {"template": str(once.pk)})
    assert response.status_code == 422
    assert 'data-testid="error-template">每人限领 1 张，该会员已有 1 张<' in (
        response.content.decode()
    )
    assert Coupon.objects.count() == 1


def test_stopped_or_other_store_templates_cannot_be_issued(
    manager_client, store, other_store, member, frozen
):
    stopped = make_template(name="停用券")
    coupon_services.coupon_template_set_active(template=stopped, active=False, actor=None)
    elsewhere = make_template(name="别店券", store_ids=[other_store.pk])
    page = manager_client.get(coupons_url(member)).content.decode()
    assert "停用券" not in page
    assert "别店券" not in page
    for template in (stopped, elsewhere):
        response = manager_client.post(coupons_url(member, "issue"), {"template": str(template.pk)})
        assert response.status_code == 422
        assert "请选择可发放的券" in response.content.decode()
    assert not Coupon.objects.exists()


def test_clerk_and_other_store_manager_cannot_issue(clerk_client, other_store, member, ten_off):
    response = clerk_client.post(coupons_url(member, "issue"), {"template": str(ten_off.pk)})
    assert response.status_code == 403
    client = signed_in(make_staff(Role.STORE_MANAGER, other_store))
    assert 'data-testid="coupon-issue"' not in client.get(coupons_url(member)).content.decode()
    response = client.post(coupons_url(member, "issue"), {"template": str(ten_off.pk)})
    assert response.status_code == 403
    assert not Coupon.objects.exists()


@pytest.mark.parametrize("role", [Role.MARKETING, Role.HQ_ADMIN])
def test_hq_issues_to_any_member(other_store, ten_off, frozen, role):
    member = make_member(other_store, name="陈静")
    client = signed_in(make_staff(role))
    response = client.post(coupons_url(member, "issue"), {"template": str(ten_off.pk)})
    assert response.status_code == 302
    assert Coupon.objects.get().member_id == member.pk


def test_cancelled_member_gets_no_coupon(manager_client, store, ten_off, frozen):
    gone = make_member(store, name="李四")
    Member.objects.filter(pk=gone.pk).update(status="cancelled")
    response = manager_client.post(coupons_url(gone, "issue"), {"template": str(ten_off.pk)})
    assert response.status_code == 403
    assert not Coupon.objects.exists()


def test_coupons_in_english(manager_client, member, coupon, frozen):
    manager_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    response = manager_client.post(coupons_url(member, "issue"), {"template": ""})
    page = response.content.decode()
    assert "Issue a coupon" in page
    assert "Choose a coupon that can be issued" in page
    assert "¥10 off" in page

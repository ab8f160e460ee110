"""The enrolment form (会员申请表, M-1) and the member edit form."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from carecard.core.models import AuditAction, AuditEntry
from carecard.members.models import Card, Consent, Member
from tests.factories import make_member, unique_phone

pytestmark = pytest.mark.django_db

URL = "/members/new/"


def form(**overrides):
    data = {
        "name": "林小雨",
        "phone": unique_phone(),
        "gender": "F",
        "birthday_calendar": "solar",
        "birthday": "1988-06-15",
        "address": "上海市浦东新区张江镇碧波路88弄",
        "chronic_conditions": ["hypertension", "diabetes"],
        "health_interests": ["sleep"],
        "contact_channels": ["sms", "wechat"],
        "preferred_channel": "wechat",
        "acquisition_channel": "in_store",
        "heard_from": "店员推荐",
        "allergies": "青霉素、磺胺",
        "consent_terms": "1",
        "consent_marketing": "1",
        "consent_health_data": "1",
    }
    data.update(overrides)
    return data


def test_url_is_stable():
    assert reverse("console:member_enrol") == URL


def test_enrol_success_redirects_to_member_page(clerk_client, clerk, store):
    data = form()
    response = clerk_client.post(URL, data)
    member = Member.objects.get(phone=data["phone"])
    assert response.status_code == 302
    assert response["Location"] == reverse("console:member_detail", args=[member.pk])
    assert member.name == "林小雨"
    assert member.home_store_id == store.pk
    assert member.enrolled_by_id == clerk.pk
    assert member.birthday == dt.date(1988, 6, 15)
    assert member.chronic_conditions == ["hypertension", "diabetes"]
    assert member.allergies == ["青霉素", "磺胺"]
    assert member.contact_channels == ["sms", "wechat"]
    assert member.consent_marketing is True
    assert member.consent_health is True
    assert Card.objects.filter(member=member, kind="virtual", status="active").count() == 1
    assert Consent.objects.filter(member=member, granted=True).count() == 3
    page = clerk_client.get(response["Location"]).content.decode()
    assert member.member_no in page


def test_enrol_over_htmx_answers_with_hx_location(clerk_client):
    data = form()
    response = clerk_client.post(
        URL, data, headers={"HX-Request": "true", "HX-Target": "enrol-form"}
    )
    member = Member.objects.get(phone=data["phone"])
    assert response.status_code == 200
    assert reverse("console:member_detail", args=[member.pk]) in response["HX-Location"]


def test_invalid_phone_shows_field_error_and_writes_nothing(clerk_client):
    members, cards, audits = (
        Member.objects.count(),
        Card.objects.count(),
        AuditEntry.objects.count(),
    )
    response = clerk_client.post(URL, form(phone="12345"))
    assert response.status_code == 422
    page = response.content.decode()
    assert 'data-testid="error-phone"' in page
    assert "手机号格式不正确" in page
    assert 'value="林小雨"' in page  # the rest of the form is kept
    assert (Member.objects.count(), Card.objects.count(), AuditEntry.objects.count()) == (
        members,
        cards,
        audits,
    )


def test_htmx_failure_rerenders_only_the_form(clerk_client):
    response = clerk_client.post(
        URL,
        form(phone="", consent_terms=""),
        headers={"HX-Request": "true", "HX-Target": "enrol-form"},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "<html" not in page
    assert 'data-testid="error-phone"' in page
    assert 'data-testid="error-consent_terms"' in page
    assert not Member.objects.exists()


def test_health_data_without_consent_is_refused(clerk_client):
    response = clerk_client.post(URL, form(consent_health_data=""))
    assert response.status_code == 422
    assert 'data-testid="error-consent_health_data"' in response.content.decode()
    assert not Member.objects.exists()


def test_duplicate_phone_links_to_the_existing_member(clerk_client, store):
    existing = make_member(store, name="老会员")
    count = Member.objects.count()
    response = clerk_client.post(URL, form(phone=existing.phone))
    assert response.status_code == 409
    page = response.content.decode()
    assert 'data-testid="duplicate"' in page
    assert f'href="{reverse("console:member_detail", args=[existing.pk])}"' in page
    assert existing.member_no in page
    assert Member.objects.count() == count


def test_lunar_birthday_with_leap_month(clerk_client):
    data = form(birthday_calendar="lunar", birthday="", lunar_birthday="2020-04-10", lunar_leap="1")
    response = clerk_client.post(URL, data)
    assert response.status_code == 302
    member = Member.objects.get(phone=data["phone"])
    assert member.birthday_is_lunar is True
    assert member.lunar_birthday == "2020-L04-10"
    assert member.birthday == dt.date(2020, 6, 1)


def test_invalid_lunar_date_is_a_birthday_error(clerk_client):
    response = clerk_client.post(
        URL, form(birthday_calendar="lunar", lunar_birthday="2021-04-10", lunar_leap="1")
    )
    assert response.status_code == 422
    assert 'data-testid="error-birthday"' in response.content.decode()
    assert not Member.objects.exists()


def test_hq_admin_must_choose_the_store(hq_client, store):
    response = hq_client.post(URL, form())
    assert response.status_code == 422
    assert 'data-testid="error-store"' in response.content.decode()
    assert not Member.objects.exists()
    data = form()
    response = hq_client.post(URL, {**data, "store": store.pk})
    assert response.status_code == 302
    assert Member.objects.get(phone=data["phone"]).home_store_id == store.pk


def test_physical_card_number_taken_writes_nothing(clerk_client, store):
    existing = make_member(store, card_number="P1000001")
    count = Member.objects.count()
    response = clerk_client.post(URL, form(card_number="P1000001"))
    assert response.status_code == 422
    assert 'data-testid="error-card_number"' in response.content.decode()
    assert Member.objects.count() == count
    assert Card.objects.filter(number="P1000001").get().member_id == existing.pk


def test_edit_profile(clerk_client, store):
    member = make_member(store, name="张三")
    url = reverse("console:member_edit", args=[member.pk])
    page = clerk_client.get(url).content.decode()
    assert f'value="{member.phone}"' in page
    response = clerk_client.post(
        url,
        {
            "name": "张三丰",
            "phone": member.phone,
            "gender": "M",
            "birthday_calendar": "solar",
            "birthday": "1975-03-02",
            "email": "zsf@example.com",
            "health_interests": ["tcm"],
        },
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.name, member.email, member.health_interests) == (
        "张三丰",
        "zsf@example.com",
        ["tcm"],
    )
    assert AuditEntry.objects.filter(action=AuditAction.MEMBER_UPDATE, member_id=member.pk).exists()


def test_edit_with_bad_email_changes_nothing(clerk_client, store):
    member = make_member(store, name="张三")
    url = reverse("console:member_edit", args=[member.pk])
    response = clerk_client.post(
        url, {"name": "李四", "phone": member.phone, "gender": "M", "email": "not-an-email"}
    )
    assert response.status_code == 422
    assert 'data-testid="error-email"' in response.content.decode()
    member.refresh_from_db()
    assert member.name == "张三"

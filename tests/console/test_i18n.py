"""Chinese by default; the language switch renders English."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_member

pytestmark = pytest.mark.django_db


def test_chinese_by_default(clerk_client):
    page = clerk_client.get(reverse("console:home")).content.decode()
    assert '<html lang="zh-hans">' in page
    assert "会员查询" in page


def test_language_switch_renders_english(clerk_client, store):
    member = make_member(store, consent_marketing=True)
    response = clerk_client.post(
        "/i18n/setlang/", {"language": "en", "next": reverse("console:home")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("console:home")
    page = clerk_client.get(reverse("console:home")).content.decode()
    assert '<html lang="en">' in page
    assert "Find members" in page
    assert "Enrol member" in page
    assert "会员查询" not in page
    page = clerk_client.get(reverse("console:member_detail", args=[member.pk])).content.decode()
    assert "Report lost" in page
    assert "Marketing messages" in page  # a model choice label
    # Service errors come back in English too.
    response = clerk_client.post(reverse("console:member_enrol"), {"name": "x", "phone": "123"})
    assert "Invalid mobile number" in response.content.decode()
    # …and back to Chinese.
    clerk_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert "会员查询" in clerk_client.get(reverse("console:home")).content.decode()


def test_login_page_is_translated(client):
    client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    page = client.get(reverse("console:login")).content.decode()
    assert "Staff sign-in" in page

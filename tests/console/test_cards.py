"""Report a card lost, replace it; consents on the member page (M-3, G-1)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from carecard.members.models import Card, CardStatus, Consent, Member
from carecard.members.services import policy_get
from tests.factories import make_member

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true", "HX-Target": "cards"}


def test_lost_then_replace_physical_card(clerk_client, store):
    policy = policy_get()
    policy.lost_card_fee = Decimal("3.00")
    policy.save()
    member = make_member(store, card_number="P5550001")
    card = Card.objects.get(number="P5550001")
    page_url = reverse("console:member_detail", args=[member.pk])
    page = clerk_client.get(page_url).content.decode()
    assert 'data-testid="card-P5550001" data-status="active"' in page

    response = clerk_client.post(
        reverse("console:member_card_lost", args=[member.pk, card.pk]), headers=HX
    )
    assert response.status_code == 200
    assert page_url in response["HX-Location"]
    card.refresh_from_db()
    assert card.status == CardStatus.FROZEN
    page = clerk_client.get(page_url).content.decode()
    assert 'data-testid="card-P5550001" data-status="frozen"' in page
    assert "挂失补卡（¥3.00）" in page

    response = clerk_client.post(
        reverse("console:member_card_replace", args=[member.pk, card.pk]),
        {"reason": "lost", "new_number": "P5550002"},
        headers=HX,
    )
    assert response.status_code == 200
    card.refresh_from_db()
    new = Card.objects.get(number="P5550002")
    assert card.status == CardStatus.REPLACED
    assert card.replaced_by_id == new.pk
    assert (new.member_id, new.status, new.fee) == (member.pk, CardStatus.ACTIVE, Decimal("3.00"))
    page = clerk_client.get(page_url).content.decode()
    assert "已补发新卡 P5550002" in page
    assert 'data-testid="card-P5550001" data-status="replaced"' in page


def test_replace_with_reason_lost_requires_a_frozen_card(clerk_client, store):
    member = make_member(store)
    card = Card.objects.get(member=member, kind="virtual")
    cards_before = Card.objects.count()
    response = clerk_client.post(
        reverse("console:member_card_replace", args=[member.pk, card.pk]),
        {"reason": "lost"},
        headers=HX,
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert 'data-testid="card-error"' in page
    assert "挂失补卡前须先挂失" in page
    card.refresh_from_db()
    assert card.status == CardStatus.ACTIVE
    assert Card.objects.count() == cards_before


def test_reporting_a_frozen_card_lost_again_is_refused(clerk_client, store):
    member = make_member(store)
    card = Card.objects.get(member=member)
    url = reverse("console:member_card_lost", args=[member.pk, card.pk])
    clerk_client.post(url)
    response = clerk_client.post(url)  # without HTMX: a message and back to the page
    assert response.status_code == 302
    page = clerk_client.get(response["Location"]).content.decode()
    assert "该卡不是正常状态" in page


def test_card_of_another_member_is_404(clerk_client, store):
    a, b = make_member(store), make_member(store)
    card_b = Card.objects.get(member=b)
    response = clerk_client.post(reverse("console:member_card_lost", args=[a.pk, card_b.pk]))
    assert response.status_code == 404
    card_b.refresh_from_db()
    assert card_b.status == CardStatus.ACTIVE


def test_card_actions_need_post(clerk_client, store):
    member = make_member(store)
    card = Card.objects.get(member=member)
    response = clerk_client.get(reverse("console:member_card_lost", args=[member.pk, card.pk]))
    assert response.status_code == 405


def test_withdraw_and_grant_marketing_consent(clerk_client, store):
    member = make_member(store, consent_marketing=True)
    url = reverse("console:member_consent", args=[member.pk])
    response = clerk_client.post(url, {"purpose": "marketing", "granted": "0"}, headers=HX)
    assert response.status_code == 200
    member.refresh_from_db()
    assert member.consent_marketing is False
    latest = Consent.objects.filter(member=member, purpose="marketing").order_by("-at", "-pk")[0]
    assert (latest.granted, latest.channel) == (False, "counter")
    page = clerk_client.get(reverse("console:member_detail", args=[member.pk])).content.decode()
    assert 'data-testid="consent-marketing" data-granted="0"' in page
    clerk_client.post(url, {"purpose": "marketing", "granted": "1"})
    assert Member.objects.get(pk=member.pk).consent_marketing is True


def test_unknown_consent_purpose_writes_nothing(clerk_client, store):
    member = make_member(store)
    before = Consent.objects.count()
    clerk_client.post(reverse("console:member_consent", args=[member.pk]), {"purpose": "x"})
    assert Consent.objects.count() == before


def test_qr_fragment_carries_a_valid_token(clerk_client, store):
    from carecard.members import qr

    member = make_member(store)
    response = clerk_client.get(reverse("console:member_qr", args=[member.pk]))
    page = response.content.decode()
    assert "<svg" in page
    token = page.split('<span class="mono">')[1].split("<")[0]
    assert qr.read_token(token) == member.pk

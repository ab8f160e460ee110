"""Card lost → replace over HTTP (M-3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from carecard.core.models import AuditAction, AuditEntry
from carecard.members.models import Card, CardStatus
from tests.api.conftest import Pos, assert_error_shape, error_fields
from tests.factories import make_member

pytestmark = pytest.mark.django_db


def test_report_lost_then_replace_keeps_the_member_and_charges_the_fee(pos: Pos, store):
    member = make_member(store, card_number="66660001")
    response = pos.post("/cards/66660001/report-lost")
    assert response.status_code == 200
    assert response.json()["status"] == "frozen"
    assert response.json()["frozen_at"]
    assert Card.objects.get(number="66660001").status == CardStatus.FROZEN

    response = pos.post("/cards/66660001/replace", {"reason": "lost", "new_number": "66660002"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["fee"] == "2.00"  # default lost-card fee of the membership policy
    assert body["new_card"]["number"] == "66660002"
    assert body["new_card"]["status"] == "active"
    assert body["new_card"]["kind"] == "physical"
    assert body["old_card"]["status"] == "replaced"
    assert body["old_card"]["replaced_by"] == "66660002"
    new = Card.objects.get(number="66660002")
    assert new.member_id == member.pk
    assert new.fee == Decimal("2.00")
    assert new.issued_store_id == store.pk
    entries = AuditEntry.objects.filter(
        action__in=[AuditAction.CARD_LOST, AuditAction.CARD_REPLACE], member_id=member.pk
    )
    assert {e.terminal_id for e in entries} == {pos.terminal.pk}
    assert entries.count() == 2

    profile = pos.get(f"/members/{member.member_no}").json()
    statuses = {c["number"]: c["status"] for c in profile["cards"]}
    assert statuses == {
        "66660001": "replaced",
        "66660002": "active",
        "V" + member.member_no: "active",
    }
    assert {c["number"]: c["replaced_by"] for c in profile["cards"]}["66660001"] == "66660002"


def test_replace_a_damaged_card_generates_a_number(pos: Pos, store):
    make_member(store, card_number="66660003")
    response = pos.post("/cards/66660003/replace", {"reason": "damaged"})
    assert response.status_code == 201
    body = response.json()
    assert body["fee"] == "1.00"
    assert body["new_card"]["number"].startswith("P")
    assert len(body["new_card"]["number"]) == 12


def test_replace_a_lost_card_before_reporting_it_is_409(pos: Pos, store):
    make_member(store, card_number="66660004")
    before = Card.objects.count()
    response = pos.post("/cards/66660004/replace", {"reason": "lost"})
    assert response.status_code == 409
    assert_error_shape(response.json(), "card_not_frozen")
    assert Card.objects.count() == before
    assert Card.objects.get(number="66660004").status == CardStatus.ACTIVE


def test_reporting_a_frozen_card_again_is_409(pos: Pos, store):
    make_member(store, card_number="66660005")
    assert pos.post("/cards/66660005/report-lost").status_code == 200
    response = pos.post("/cards/66660005/report-lost")
    assert response.status_code == 409
    assert response.json()["code"] == "card_not_active"


def test_replacement_number_already_taken_is_422(pos: Pos, store):
    make_member(store, card_number="66660006")
    make_member(store, card_number="66660007")
    pos.post("/cards/66660006/report-lost")
    before = Card.objects.count()
    response = pos.post("/cards/66660006/replace", {"reason": "lost", "new_number": "66660007"})
    assert response.status_code == 422
    assert error_fields(response.json()) == {"card_number": "taken"}
    assert Card.objects.count() == before
    assert Card.objects.get(number="66660006").status == CardStatus.FROZEN


def test_invalid_reason_is_422(pos: Pos, store):
    make_member(store, card_number="66660008")
    response = pos.post("/cards/66660008/replace", {"reason": "stolen"})
    assert response.status_code == 422
    assert error_fields(response.json()) == {"reason": "literal_error"}


def test_unknown_card_is_404(pos: Pos):
    for path in ("/cards/NOPE0001/report-lost", "/cards/NOPE0001/replace"):
        response = pos.post(path, {"reason": "lost"})
        assert response.status_code == 404
        assert_error_shape(response.json(), "card_not_found")


def test_virtual_card_number_is_found_case_insensitively(pos: Pos, store):
    member = make_member(store)
    response = pos.post(f"/cards/v{member.member_no}/report-lost")
    assert response.status_code == 200
    assert response.json()["number"] == "V" + member.member_no

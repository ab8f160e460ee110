"""Members over HTTP: lookup, enrol, read, update, health, consents (I-1, M-1, M-5, G-1, G-3)."""

from __future__ import annotations

import datetime as dt

import pytest

from carecard.core.models import AuditAction, AuditEntry
from carecard.members import qr
from carecard.members.models import Card, Consent, Member, MemberSearchKey
from tests.api.conftest import Pos, assert_error_shape, error_fields
from tests.factories import make_member, member_data, valid_id

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, ...]:
    return (
        Member.objects.count(),
        Card.objects.count(),
        Consent.objects.count(),
        MemberSearchKey.objects.count(),
        AuditEntry.objects.count(),
    )


# --- enrol ---------------------------------------------------------------------------------


def test_enrol_creates_the_member_at_the_terminals_store(pos: Pos, store):
    response = pos.post(
        "/members",
        member_data(
            name="曾小明",
            phone="139 1234 5678",
            id_number=valid_id(dt.date(1980, 5, 6), 123),
            birthday=None,
            gender=None,
            address="上海市浦东新区张江镇祖冲之路899号",
            health_interests=["diabetes", "睡眠"],
            consent_marketing=True,
            consent_health_data=True,
            allergies=["青霉素"],
            card_number="P20260001",
        ),
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    member = Member.objects.get(member_no=body["member_no"])
    assert member.home_store == store
    assert member.enrolled_by is None
    assert body["phone"] == "13912345678"  # normalised, unmasked: the terminal's own store
    assert body["id_number"] == "310115********" + member.id_number[-4:]
    assert body["birthday"] == "1980-05-06"
    assert body["gender"] == "M"
    assert body["health_interests"] == ["diabetes", "sleep"]
    assert body["home_store"] == {"code": store.code, "name": store.name}
    assert body["own_store"] is True
    assert body["can_see_health"] is True
    assert sorted((c["kind"], c["number"]) for c in body["cards"]) == [
        ("physical", "P20260001"),
        ("virtual", "V" + member.member_no),
    ]
    assert {c["purpose"]: c["granted"] for c in body["consents"]} == {
        "terms": True,
        "marketing": True,
        "health_data": True,
    }
    assert {c["channel"] for c in body["consents"]} == {"pos"}
    assert member.allergies == ["青霉素"]
    entry = AuditEntry.objects.get(action=AuditAction.MEMBER_ENROL, member_id=member.pk)
    assert entry.terminal_id == pos.terminal.pk
    assert entry.store_id == store.pk


def test_invalid_phone_is_422_naming_the_field_and_writes_nothing(pos: Pos):
    before = _counts()
    response = pos.post("/members", member_data(phone="12345"))
    assert response.status_code == 422
    body = response.json()
    assert_error_shape(body, "validation_error")
    assert error_fields(body) == {"phone": "invalid"}
    assert _counts() == before


def test_wrong_id_checksum_is_422_naming_the_field_and_writes_nothing(pos: Pos):
    good = valid_id()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    before = _counts()
    response = pos.post("/members", member_data(id_number=bad, birthday=None, gender=None))
    assert response.status_code == 422
    assert error_fields(response.json()) == {"id_number": "checksum"}
    assert _counts() == before


def test_every_bad_field_is_named_at_once(pos: Pos):
    before = _counts()
    response = pos.post(
        "/members",
        member_data(
            phone="1",
            email="not-an-email",
            birthday="2999-01-01",
            chronic_conditions=["flu"],
            consent_terms=False,
        ),
    )
    assert response.status_code == 422
    assert error_fields(response.json()) == {
        "phone": "invalid",
        "email": "invalid",
        "birthday": "out_of_range",
        "chronic_conditions": "invalid_choice",
        "consent_terms": "required",
    }
    assert _counts() == before


def test_health_data_without_its_separate_consent_is_refused(pos: Pos):
    before = _counts()
    response = pos.post("/members", member_data(allergies=["青霉素"]))
    assert response.status_code == 422
    assert error_fields(response.json()) == {"consent_health_data": "required"}
    assert _counts() == before


def test_schema_errors_name_the_field(pos: Pos):
    before = _counts()
    data = member_data(name=123, allergies="青霉素")
    del data["consent_terms"]
    response = pos.post("/members", data)
    assert response.status_code == 422
    fields = error_fields(response.json())
    assert set(fields) == {"name", "allergies", "consent_terms"}
    assert fields["consent_terms"] == "missing"
    assert _counts() == before


def test_duplicate_phone_is_409_with_a_pointer_and_writes_nothing(pos: Pos, other_store):
    existing = make_member(other_store, phone="13912340010")
    before = _counts()
    response = pos.post("/members", member_data(name="王五", phone="13912340010"))
    assert response.status_code == 409
    body = response.json()
    assert_error_shape(body, "duplicate_phone")
    assert body["errors"][0]["field"] == "phone"
    assert body["detail"]["member_no"] == existing.member_no
    assert _counts() == before


def test_duplicate_id_number_is_409_with_a_pointer(pos: Pos, store):
    number = valid_id(dt.date(1970, 1, 2), 456)
    existing = make_member(store, id_number=number, birthday=None, gender=None)
    before = _counts()
    response = pos.post("/members", member_data(id_number=number, birthday=None, gender=None))
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_id_number"
    assert response.json()["detail"]["member_no"] == existing.member_no
    assert _counts() == before


# --- lookup --------------------------------------------------------------------------------


def test_lookup_by_every_kind_of_key(pos: Pos, store):
    member = make_member(store, name="张三丰", phone="13912345601", card_number="88880001")
    others = {"pinyin": "zsf", "phone": "13912345601", "phone_tail": "5601 张三"}
    for match, q in others.items():
        body = pos.get("/members/lookup", {"q": q}).json()
        assert body["match"] == match, q
        assert [r["member_no"] for r in body["results"]] == [member.member_no], q
    body = pos.get("/members/lookup", {"q": "88880001"}).json()
    assert (body["match"], body["results"][0]["member_no"]) == ("card", member.member_no)
    token = qr.make_token(member.pk)
    body = pos.get("/members/lookup", {"q": token}).json()
    assert (body["match"], body["count"]) == ("qr", 1)
    body = pos.get("/members/lookup", {"q": "张三"}).json()
    assert body["match"] == "name"
    assert body["results"][0]["name"] == "张三丰"


def test_lookup_masks_phones_of_other_stores_members(pos: Pos, store, other_store):
    make_member(store, name="赵一", phone="13912345611")
    make_member(other_store, name="赵二", phone="13912345612")
    body = pos.get("/members/lookup", {"q": "赵"}).json()
    phones = {r["name"]: (r["phone"], r["own_store"]) for r in body["results"]}
    assert phones == {"赵一": ("13912345611", True), "赵二": ("139****5612", False)}


def test_lookup_without_q_is_422(pos: Pos):
    response = pos.get("/members/lookup")
    assert response.status_code == 422
    assert error_fields(response.json()) == {"q": "missing"}


def test_lookup_with_nothing_found_is_an_empty_list(pos: Pos):
    body = pos.get("/members/lookup", {"q": "13800000000"}).json()
    assert body == {"match": "phone", "count": 0, "results": []}


# --- read ----------------------------------------------------------------------------------


def test_read_own_store_member_unmasked(pos: Pos, store):
    member = make_member(
        store,
        phone="13912345620",
        consent_marketing=True,
        email="qian@example.com",
        address="上海市浦东新区花木路1号",
    )
    body = pos.get(f"/members/{member.member_no}").json()
    assert body["phone"] == "13912345620"
    assert body["email"] == "qian@example.com"
    assert body["address"] == "上海市浦东新区花木路1号"
    assert body["own_store"] is True
    assert body["can_see_health"] is True
    assert [c["number"] for c in body["cards"]] == ["V" + member.member_no]
    assert {c["purpose"]: c["granted"] for c in body["consents"]}["marketing"] is True


def test_read_other_stores_member_masked(other_pos: Pos, store):
    member = make_member(
        store,
        phone="13912345621",
        id_number=valid_id(),
        birthday=None,
        email="lin@example.com",
        address="上海市浦东新区张江镇碧波路500弄3号",
    )
    body = other_pos.get(f"/members/{member.member_no}").json()
    assert body["phone"] == "139****5621"
    assert body["email"] == "l***@example.com"
    assert (body["district"], body["address"], body["community"]) == ("浦东新区", "", "")
    assert body["id_number"] == member.id_number[:6] + "********" + member.id_number[-4:]
    assert body["own_store"] is False
    assert body["can_see_health"] is False


def test_read_unknown_member_is_404(pos: Pos):
    response = pos.get("/members/999999999999")
    assert response.status_code == 404
    assert_error_shape(response.json(), "member_not_found")


# --- update --------------------------------------------------------------------------------


def test_patch_changes_only_the_keys_sent(pos: Pos, store):
    member = make_member(store, name="钱七", phone="13912345630", email="a@example.com")
    response = pos.patch(
        f"/members/{member.member_no}",
        {"address": "上海市浦东新区花木路100号", "preferred_channel": "wechat"},
    )
    assert response.status_code == 200, response.json()
    member.refresh_from_db()
    assert (member.district, member.preferred_channel) == ("浦东新区", "wechat")
    assert (member.name, member.phone, member.email) == ("钱七", "13912345630", "a@example.com")
    entry = AuditEntry.objects.filter(action=AuditAction.MEMBER_UPDATE).get()
    assert entry.terminal_id == pos.terminal.pk
    assert response.json()["preferred_channel"] == "wechat"


def test_patch_with_an_invalid_phone_changes_nothing(pos: Pos, store):
    member = make_member(store, phone="13912345631")
    before = _counts()
    response = pos.patch(f"/members/{member.member_no}", {"phone": "999", "name": "新名字"})
    assert response.status_code == 422
    assert error_fields(response.json()) == {"phone": "invalid"}
    member.refresh_from_db()
    assert (member.phone, member.name) == ("13912345631", "张三")
    assert _counts() == before


def test_patch_to_another_members_phone_is_409(pos: Pos, store):
    first = make_member(store, phone="13912345632")
    second = make_member(store, phone="13912345633")
    response = pos.patch(f"/members/{second.member_no}", {"phone": "13912345632"})
    assert response.status_code == 409
    assert response.json()["detail"]["member_no"] == first.member_no
    second.refresh_from_db()
    assert second.phone == "13912345633"


def test_patch_health_of_another_stores_member_is_403(other_pos: Pos, store):
    member = make_member(store, consent_health_data=True, allergies=["磺胺"])
    before = _counts()
    response = other_pos.patch(f"/members/{member.member_no}", {"allergies": ["青霉素"]})
    assert response.status_code == 403
    assert_error_shape(response.json(), "permission_denied")
    member.refresh_from_db()
    assert member.allergies == ["磺胺"]
    assert _counts() == before


def test_patch_health_without_consent_is_422(pos: Pos, store):
    member = make_member(store)
    response = pos.patch(f"/members/{member.member_no}", {"allergies": ["青霉素"]})
    assert response.status_code == 422
    assert error_fields(response.json()) == {"consent_health_data": "required"}
    member.refresh_from_db()
    assert member.allergies == []


def test_patch_unknown_member_is_404(pos: Pos):
    response = pos.patch("/members/000000000000", {"name": "x"})
    assert response.status_code == 404
    assert response.json()["code"] == "member_not_found"


# --- health --------------------------------------------------------------------------------


def test_health_of_own_store_member_is_returned_and_audited(pos: Pos, store):
    member = make_member(
        store,
        consent_health_data=True,
        allergies=["青霉素"],
        medical_history=["胃溃疡"],
        chronic_conditions=["hypertension"],
    )
    response = pos.get(f"/members/{member.member_no}/health")
    assert response.status_code == 200
    assert response.json() == {
        "member_no": member.member_no,
        "consent_health": True,
        "allergies": ["青霉素"],
        "medical_history": ["胃溃疡"],
        "chronic_conditions": ["hypertension"],
    }
    entry = AuditEntry.objects.get(action=AuditAction.HEALTH_READ, member_id=member.pk)
    assert entry.terminal_id == pos.terminal.pk


def test_health_of_another_stores_member_is_403_and_not_read(other_pos: Pos, store):
    member = make_member(store, consent_health_data=True, allergies=["青霉素"])
    response = other_pos.get(f"/members/{member.member_no}/health")
    assert response.status_code == 403
    body = response.json()
    assert_error_shape(body, "permission_denied")
    assert "青霉素" not in response.content.decode()
    assert not AuditEntry.objects.filter(action=AuditAction.HEALTH_READ).exists()


# --- consents ------------------------------------------------------------------------------


def test_withdrawing_marketing_consent_takes_effect_at_once(pos: Pos, store):
    member = make_member(store, consent_marketing=True)
    response = pos.post(
        f"/members/{member.member_no}/consents",
        {"purpose": "marketing", "granted": False, "channel": "paper"},
    )
    assert response.status_code == 201
    assert response.json()["purpose"] == "marketing"
    assert response.json()["granted"] is False
    member.refresh_from_db()
    assert member.consent_marketing is False
    entry = AuditEntry.objects.get(action=AuditAction.CONSENT, member_id=member.pk)
    assert entry.terminal_id == pos.terminal.pk
    body = pos.get(f"/members/{member.member_no}").json()
    assert {c["purpose"]: c["granted"] for c in body["consents"]}["marketing"] is False


def test_unknown_consent_purpose_is_422(pos: Pos, store):
    member = make_member(store)
    before = Consent.objects.count()
    response = pos.post(
        f"/members/{member.member_no}/consents", {"purpose": "spam", "granted": True}
    )
    assert response.status_code == 422
    assert error_fields(response.json()) == {"purpose": "literal_error"}
    assert Consent.objects.count() == before


@pytest.mark.parametrize("lunar", ["0000-01-01", "9999-12-30", "2023-L13-01", "2024-02-31"])
def test_impossible_lunar_birthday_is_422_not_500(pos: Pos, lunar):
    before = _counts()
    response = pos.post(
        "/members", member_data(birthday=None, birthday_calendar="lunar", lunar_birthday=lunar)
    )
    assert response.status_code == 422
    assert error_fields(response.json()) == {"birthday": "invalid_lunar"}
    assert _counts() == before

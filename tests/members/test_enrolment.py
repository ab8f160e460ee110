import datetime as dt
from decimal import Decimal

import pytest

from carecard.core.errors import Conflict, ValidationFailed
from carecard.core.models import AuditAction, AuditEntry
from carecard.members import services
from carecard.members.models import (
    Card,
    CardKind,
    Consent,
    EntryRule,
    Member,
    MemberSearchKey,
    MemberStatus,
)
from tests.factories import make_member, member_data, valid_id

pytestmark = pytest.mark.django_db


def _counts():
    return (
        Member.objects.count(),
        Card.objects.count(),
        Consent.objects.count(),
        MemberSearchKey.objects.count(),
        AuditEntry.objects.count(),
    )


def test_enrol_creates_member_card_consents_keys_and_audit(store, clerk):
    member = services.member_enrol(
        actor=clerk,
        store=store,
        data=member_data(
            name="曾小明",
            id_number=valid_id(dt.date(1980, 5, 6), 123),
            birthday="",
            gender="",
            consent_marketing=True,
            consent_health_data=True,
            allergies="青霉素、磺胺",
            chronic_conditions=["hypertension", "糖尿病"],
            address="上海市浦东新区张江镇祖冲之路899号",
        ),
    )
    member.refresh_from_db()
    assert member.status == MemberStatus.ACTIVE
    assert member.birthday == dt.date(1980, 5, 6)  # from the ID number
    assert member.gender == "M"
    assert member.allergies == ["青霉素", "磺胺"]
    assert member.chronic_conditions == ["hypertension", "diabetes"]
    assert (member.province, member.district) == ("上海市", "浦东新区")
    assert member.enrolled_by == clerk
    assert member.home_store == store
    cards = list(member.cards.all())
    assert [(c.kind, c.number) for c in cards] == [(CardKind.VIRTUAL, "V" + member.member_no)]
    consents = {c.purpose: c.granted for c in member.consents.all()}
    assert consents == {"terms": True, "marketing": True, "health_data": True}
    keys = set(member.search_keys.values_list("key", flat=True))
    assert {"zxm", "cxm", "zengxiaoming"} <= keys
    entry = AuditEntry.objects.get(action=AuditAction.MEMBER_ENROL)
    assert entry.member_id == member.pk
    assert entry.actor == clerk


def test_sensitive_fields_are_encrypted_at_rest(store):
    member = make_member(
        store,
        id_number=valid_id(),
        birthday="",
        gender="",
        consent_health_data=True,
        medical_history="胃溃疡",
    )
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT id_number, medical_history, id_number_index FROM members_member WHERE id = %s",
            [member.pk],
        )
        id_raw, history_raw, index = cur.fetchone()
    assert id_raw.startswith("v1:")
    assert valid_id() not in id_raw
    assert history_raw.startswith("v1:")
    assert "胃溃疡" not in history_raw
    assert index
    assert valid_id() not in index


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"phone": "12345"}, "phone", "invalid"),
        ({"phone": ""}, "phone", "required"),
        ({"name": " "}, "name", "required"),
        ({"id_number": "110105194912310021", "birthday": ""}, "id_number", "checksum"),
        ({"birthday": "2099-01-01"}, "birthday", "out_of_range"),
        ({"birthday": "1980-02-30"}, "birthday", "invalid"),
        ({"consent_terms": False}, "consent_terms", "required"),
        ({"allergies": "青霉素"}, "consent_health_data", "required"),
        ({"health_interests": ["flying"]}, "health_interests", "invalid_choice"),
        ({"email": "not-an-email"}, "email", "invalid"),
        ({"birthday_calendar": "lunar", "birthday": "2024-L02-01"}, "birthday", "invalid_lunar"),
    ],
)
def test_bad_input_is_refused_with_field_and_writes_nothing(store, clerk, overrides, field, code):
    before = _counts()
    with pytest.raises(ValidationFailed) as exc:
        services.member_enrol(actor=clerk, store=store, data=member_data(**overrides))
    assert (field, code) in [(e.field, e.code) for e in exc.value.errors]
    assert _counts() == before


def test_duplicate_phone_and_id_are_refused_with_pointer(store, clerk):
    first = make_member(store, phone="13812345678", id_number=valid_id(), birthday="", gender="")
    before = _counts()
    with pytest.raises(Conflict) as exc:
        make_member(store, phone="+86 138 1234 5678")
    assert exc.value.code == "duplicate_phone"
    assert exc.value.detail["member_no"] == first.member_no
    with pytest.raises(Conflict) as exc:
        make_member(store, id_number=valid_id().lower(), birthday="", gender="")
    assert exc.value.code == "duplicate_id_number"
    assert _counts() == before


def test_lunar_leap_month_birthday(store):
    member = make_member(store, birthday_calendar="lunar", birthday="2020-L04-12")
    assert member.birthday == dt.date(2020, 6, 3)  # 闰四月初一 = 2020-05-23
    assert member.lunar_birthday == "2020-L04-12"
    assert member.birthday_is_lunar is True


def test_entry_rule_purchase_keeps_member_pending_until_threshold(store):
    policy = services.policy_get()
    policy.entry_rule = EntryRule.PURCHASE
    policy.entry_min_purchase = Decimal("20.00")
    policy.save()
    pending = make_member(store)
    assert pending.status == MemberStatus.PENDING
    active = services.member_enrol(
        actor=None, store=store, data=member_data(), qualifying_amount=Decimal("20.00")
    )
    assert active.status == MemberStatus.ACTIVE
    services.member_activate(member=pending, reason="purchase")
    assert pending.status == MemberStatus.ACTIVE


def test_completeness_follows_required_fields(store):
    policy = services.policy_get()
    policy.required_fields = ["name", "phone", "birthday", "address"]
    policy.save()
    partial = make_member(store)
    assert (partial.completeness, partial.is_complete) == (75, False)
    full = make_member(store, address="上海市浦东新区世纪大道100号")
    assert (full.completeness, full.is_complete) == (100, True)


def test_update_refuses_taken_phone_and_changes_nothing(store, clerk):
    a = make_member(store, phone="13900000001")
    b = make_member(store, phone="13900000002", name="李四")
    with pytest.raises(Conflict):
        services.member_update(actor=clerk, member=b, data={"phone": "13900000001"})
    b.refresh_from_db()
    assert b.phone == "13900000002"
    services.member_update(actor=clerk, member=b, data={"name": "李思思"})
    b.refresh_from_db()
    assert b.name == "李思思"
    assert "lss" in set(b.search_keys.values_list("key", flat=True))
    assert a.phone == "13900000001"


def test_consent_withdrawal_is_recorded_and_cached(store, clerk):
    member = make_member(store, consent_marketing=True)
    assert member.consent_marketing
    services.consent_set(
        actor=clerk, member=member, purpose="marketing", granted=False, channel="counter"
    )
    member.refresh_from_db()
    assert member.consent_marketing is False
    history = list(
        member.consents.filter(purpose="marketing")
        .order_by("at", "pk")
        .values_list("granted", flat=True)
    )
    assert history == [True, False]


def test_validity_from_29_february_ends_on_28_february():
    import datetime as dt

    assert services.valid_until_for(3, dt.date(2024, 2, 29)) == dt.date(2027, 2, 28)
    assert services.valid_until_for(4, dt.date(2024, 2, 29)) == dt.date(2028, 2, 29)
    assert services.valid_until_for(None, dt.date(2024, 2, 29)) is None


def test_enrolment_on_29_february_with_validity_years(store):
    import datetime as dt
    from zoneinfo import ZoneInfo

    policy = services.policy_get()
    policy.validity_years = 1
    policy.save()
    at = dt.datetime(2024, 2, 29, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    member = services.member_enrol(actor=None, store=store, data=member_data(), enrolled_at=at)
    assert member.valid_until == dt.date(2025, 2, 28)


def test_acquisition_channel_label_with_slash_is_accepted(store):
    member = make_member(store, acquisition_channel="新媒体/微信扫码", preferred_channel="微信")
    assert member.acquisition_channel == "new_media"
    assert member.preferred_channel == "wechat"
    assert member.contact_channels == ["wechat"]

"""The demo chain generator (I-4): deterministic by seed, any size, valid and plausible data."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.core.management import call_command

from carecard.catalog.models import Category, Product
from carecard.chain.models import Staff, Store, TradingZone
from carecard.core.idcard import parse_id_number
from carecard.core.models import AuditEntry
from carecard.core.phone import normalize_mobile
from carecard.core.roles import Role
from carecard.demo import data as D
from carecard.demo.generator import (
    DEMO_TODAY,
    demo_exists,
    generate_demo,
    logins,
    member_fingerprint,
    store_count,
)
from carecard.demo.people import StoreSpec, ZoneInfoSpec, member_specs
from carecard.members.models import Card, Consent, Household, Member, MemberGroup
from carecard.members.selectors import likely_duplicates
from carecard.members.services import member_enrol

PASSWORD = "demo-Pass-2026"


def _flush() -> None:
    call_command("flush", interactive=False, verbosity=0)


def _age(birthday: dt.date) -> int:
    t = DEMO_TODAY
    return t.year - birthday.year - ((t.month, t.day) < (birthday.month, birthday.day))


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_same_seed_gives_the_same_members_and_another_seed_does_not() -> None:
    _flush()  # pytest-django runs transactional tests last, after the module's chain fixture
    generate_demo(members=150, seed=11, password=PASSWORD, progress=None)
    first = member_fingerprint()
    _flush()
    generate_demo(members=150, seed=11, password=PASSWORD, progress=None)
    assert member_fingerprint() == first
    _flush()
    generate_demo(members=150, seed=12, password=PASSWORD, progress=None)
    assert member_fingerprint() != first
    assert Member.objects.count() == 150


def _member_rows() -> dict[str, tuple]:
    """Everything enrolment writes for each member, keyed by phone, without ids or nonces."""
    rows = {}
    for m in Member.objects.select_related("zone", "home_store", "enrolled_by"):
        cards = sorted(
            (c.kind, c.status, c.issued_at, c.issued_store_id == m.home_store_id, c.fee)
            for c in m.cards.all()
        )
        consents = sorted(
            (c.purpose, c.granted, c.text_version, c.channel, c.at, c.recorded_by_id)
            for c in m.consents.all()
        )
        keys = sorted(m.search_keys.values_list("key", flat=True))
        audit = list(
            AuditEntry.objects.filter(member_id=m.pk).values_list(
                "action", "actor_id", "actor_label", "store_id", "detail"
            )
        )
        rows[m.phone] = (
            m.status,
            m.zone.name if m.zone else None,
            m.completeness,
            m.is_complete,
            m.valid_until,
            m.id_number,
            bool(m.id_number_index),
            m.phone_tail,
            m.birthday,
            m.lunar_birthday,
            m.consent_health,
            m.consent_marketing,
            m.referrer.phone if m.referrer else None,
            m.group.name if m.group else None,
            cards,
            consents,
            keys,
            audit,
        )
    return rows


@pytest.mark.django_db(transaction=True)
def test_bulk_writer_writes_what_member_enrol_writes() -> None:
    _flush()
    generate_demo(members=160, seed=5, password=PASSWORD, writer="service", progress=None)
    via_service = _member_rows()
    service_fingerprint = member_fingerprint()
    _flush()
    generate_demo(members=160, seed=5, password=PASSWORD, writer="bulk", progress=None)
    via_bulk = _member_rows()
    assert member_fingerprint() == service_fingerprint
    assert via_bulk.keys() == via_service.keys()
    for phone, row in via_service.items():
        assert via_bulk[phone] == row, phone


def test_member_specs_are_pure_and_ordered() -> None:
    zones = (ZoneInfoSpec(0, "联洋社区", "浦东新区", "芳甸路", ("联洋新苑", "联洋花园"), 5000),)
    stores = [
        StoreSpec(0, "R01", "浦东新区", dt.date(2015, 1, 1), 1.0, zones, (("clerk01", 1.0),)),
    ]
    a = member_specs(300, seed=3, stores=stores, today=DEMO_TODAY, n_groups=1)
    b = member_specs(300, seed=3, stores=stores, today=DEMO_TODAY, n_groups=1)
    assert [s.data for s in a] == [s.data for s in b]
    assert [s.enrolled_at for s in a] == sorted(s.enrolled_at for s in a)
    assert all(s.referrer is None or s.referrer < s.index for s in a)
    assert {s.data["phone"] for s in a} == {s.data["phone"] for s in b}
    assert len({s.data["phone"] for s in a}) == 300


def test_store_count_grows_slowly_with_size() -> None:
    assert store_count(200) == 6
    assert store_count(20000) == 12
    assert store_count(1_000_000) == len(D.STORE_SITES)


# --- one generated chain, read by the checks below ----------------------------------------------


@pytest.fixture(scope="module")
def chain(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN201 — pytest-django fixtures
    with django_db_blocker.unblock():
        _flush()
        assert not demo_exists()
        stats = generate_demo(members=400, seed=42, password=PASSWORD, progress=None)
    yield stats
    with django_db_blocker.unblock():
        _flush()


@pytest.mark.django_db
def test_stats_match_the_rows(chain: dict) -> None:
    assert demo_exists()
    assert chain["members"] == Member.objects.count() == 400
    assert chain["stores"] == Store.objects.count() == store_count(400)
    assert chain["zones"] == TradingZone.objects.count()
    assert chain["staff"] == Staff.objects.count()
    assert chain["products"] == Product.objects.count()
    assert 150 <= chain["products"] <= 300


@pytest.mark.django_db
def test_members_are_valid(chain: dict) -> None:
    members = list(Member.objects.all())
    phones = [m.phone for m in members]
    assert len(set(phones)) == len(phones)
    assert all(normalize_mobile(p) == p for p in phones)
    with_id = [m for m in members if m.id_number]
    assert 0.15 < len(with_id) / len(members) < 0.45
    for m in with_id:
        info = parse_id_number(m.id_number, today=DEMO_TODAY)
        assert (info.birthday, info.gender) == (m.birthday, m.gender)
    assert all(m.birthday and 18 <= _age(m.birthday) <= 93 for m in members)
    assert all(m.enrolled_at.date() <= DEMO_TODAY for m in members)
    assert all(
        m.birthday.replace(year=m.birthday.year + 18) <= m.enrolled_at.date()
        for m in members
        if not (m.birthday.month == 2 and m.birthday.day == 29)
    )


@pytest.mark.django_db
def test_every_member_has_a_virtual_card_terms_consent_and_search_keys(chain: dict) -> None:
    ids = set(Member.objects.values_list("pk", flat=True))
    virtual = Counter(
        Card.objects.filter(kind="virtual", status="active").values_list("member_id", flat=True)
    )
    assert set(virtual) == ids
    assert set(virtual.values()) == {1}
    terms = set(
        Consent.objects.filter(purpose="terms", granted=True).values_list("member_id", flat=True)
    )
    assert terms == ids
    assert Card.objects.filter(kind="physical").exists()
    for m in Member.objects.all():
        assert m.search_keys.exists()
        has_health = bool(m.chronic_conditions or m.allergies or m.medical_history)
        assert not has_health or m.consent_health


@pytest.mark.django_db
def test_hypertension_rises_with_age(chain: dict) -> None:
    members = list(Member.objects.all())
    old = [m for m in members if _age(m.birthday) >= 65]
    young = [m for m in members if _age(m.birthday) < 45]

    def share(group: list[Member], condition: str) -> float:
        return sum(condition in m.chronic_conditions for m in group) / len(group)

    assert len(old) > 60
    assert len(young) > 60
    assert share(old, "hypertension") > 0.4
    assert share(young, "hypertension") < 0.15
    assert share(old, "diabetes") > share(young, "diabetes")
    overall = share(members, "hypertension")
    assert 0.15 < overall < 0.4


@pytest.mark.django_db
def test_profiles_are_spread_over_zones_channels_and_staff(chain: dict) -> None:
    members = list(Member.objects.select_related("zone__store", "home_store", "enrolled_by"))
    zoned = [m for m in members if m.zone]
    assert len(zoned) / len(members) > 0.8
    assert all(m.zone.store.region_id == m.home_store.region_id for m in zoned)
    assert all(m.enrolled_by.home_store_id == m.home_store_id for m in members)
    channels = Counter(m.acquisition_channel for m in members)
    assert channels.most_common(1)[0][0] == "in_store"
    assert {"in_store", "new_media", "community", "referral"} <= set(channels)
    referred = [m for m in members if m.referrer_id]
    assert referred
    assert all(m.referrer.enrolled_at <= m.enrolled_at for m in referred)
    assert any(m.health_interests for m in members)
    assert any(m.allergies for m in members)
    assert Household.objects.exists()
    assert all(h.members.count() >= 2 for h in Household.objects.all())
    assert MemberGroup.objects.filter(members__isnull=False).exists()
    assert len(likely_duplicates()) >= 2


@pytest.mark.django_db
def test_logins_exist_with_their_roles_and_stores(chain: dict) -> None:
    printed = logins()
    assert [u for _label, u, _store in printed] == [
        "clerk01",
        "pharm01",
        "manager01",
        "marketing01",
        "admin01",
        "auditor01",
    ]
    store1 = Store.objects.get(code="SH001")
    expected = {
        "clerk01": (Role.CLERK, store1),
        "pharm01": (Role.PHARMACIST, store1),
        "manager01": (Role.STORE_MANAGER, store1),
        "marketing01": (Role.MARKETING, None),
        "admin01": (Role.HQ_ADMIN, None),
        "auditor01": (Role.AUDITOR, None),
    }
    for username, (role, store) in expected.items():
        staff = Staff.objects.get(username=username)
        assert (staff.role, staff.home_store) == (role, store)
        assert staff.check_password(PASSWORD)
    assert Staff.objects.get(username="admin01").is_staff
    assert printed[0][2] == store1.name


@pytest.mark.django_db
def test_catalogue_has_the_tree_and_the_safety_data(chain: dict) -> None:
    roots = set(Category.objects.filter(parent=None).values_list("name", flat=True))
    assert roots == {"处方药", "甲类OTC", "乙类OTC", "中药饮片", "保健食品", "医疗器械", "个护"}
    amoxicillin = Product.objects.filter(name="阿莫西林胶囊")
    assert amoxicillin.exists()
    assert all(
        set(p.drug_classes.values_list("name", flat=True)) == {"青霉素类"} for p in amoxicillin
    )
    amlodipine = Product.objects.get(
        name="苯磺酸氨氯地平片", specification="5mg*28片", brand="络活喜"
    )
    assert amlodipine.days_supply == 28
    assert amlodipine.item_class == "rx"
    assert amlodipine.is_insurance_listed
    assert list(amlodipine.ingredients.values_list("name", flat=True)) == ["氨氯地平"]
    assert Product.objects.filter(contains_ephedrine=True).count() >= 3
    assert Product.objects.filter(member_price__isnull=False).exists()
    assert not Product.objects.filter(item_class="rx", member_price__isnull=False).exists()
    assert all(p.cost < p.shelf_price for p in Product.objects.all())


@pytest.mark.django_db
def test_counter_enrolment_works_after_the_bulk_load(chain: dict) -> None:
    """The bulk writer allocates member ids itself; the next enrolment must still get a fresh
    id (on PostgreSQL the sequence is moved past them)."""
    clerk = Staff.objects.get(username="clerk01")
    top = Member.objects.order_by("-pk").values_list("pk", flat=True).first()
    member = member_enrol(
        actor=clerk,
        store=clerk.home_store,
        data={"name": "曾小单", "phone": "13900000001", "consent_terms": True},
    )
    assert member.pk > top
    assert member.cards.get().number == "V" + member.member_no

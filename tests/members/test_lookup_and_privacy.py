import pytest

from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.members import qr, selectors
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def zhang(store):
    return make_member(store, name="张三丰", phone="13812345678", card_number="CARD9001")


@pytest.mark.parametrize(
    ("query", "how"),
    [
        ("13812345678", "phone"),
        ("138 1234 5678", "phone"),
        ("5678 张三", "phone_tail"),
        ("张三丰5678", "phone_tail"),
        ("5678zsf", "phone_tail"),
        ("CARD9001", "card"),
        ("zsf", "pinyin"),
        ("ZS", "pinyin"),
        ("zhangsan", "pinyin"),
        ("张三", "name"),
    ],
)
def test_lookup_finds_member(zhang, query, how):
    make_member(zhang.home_store, name="李四", phone="13912345678")
    matched, members = selectors.lookup_members(query)
    assert matched == how
    assert members == [zhang]


def test_lookup_by_virtual_card_member_no_and_qr(zhang):
    assert selectors.lookup_members("V" + zhang.member_no)[1] == [zhang]
    assert selectors.lookup_members(zhang.member_no)[1] == [zhang]
    token = qr.make_token(zhang.pk)
    assert selectors.lookup_members(token) == ("qr", [zhang])


def test_qr_token_expires_and_rejects_tampering(zhang):
    token = qr.make_token(zhang.pk, now=1_000_000.0)
    assert qr.read_token(token, now=1_000_000.0) == zhang.pk
    assert qr.read_token(token, now=1_000_060.0) == zhang.pk  # previous window still accepted
    assert qr.read_token(token, now=1_000_200.0) is None
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert qr.read_token(tampered, now=1_000_000.0) is None


def test_polyphonic_surname_found_by_both_readings(store):
    zeng = make_member(store, name="曾国藩")
    assert selectors.lookup_members("zgf")[1] == [zeng]
    assert selectors.lookup_members("cgf")[1] == [zeng]


def test_pinyin_results_in_key_order_then_enrolment(store):
    sanfeng = make_member(store, name="张三丰", phone="13800000001")
    sen = make_member(store, name="张森", phone="13800000002")
    shun = make_member(store, name="周顺", phone="13800000003")
    assert selectors.lookup_members("zs")[1] == [sen, shun, sanfeng]
    assert selectors.lookup_members("zs", limit=2)[1] == [sen, shun]


def test_card_number_that_reads_as_initials_and_tail(store):
    owner = make_member(store, name="王五", phone="13800009001", card_number="ZS9001")
    zhang = make_member(store, name="张三", phone="13900009002")
    assert selectors.lookup_members("ZS9001") == ("card", [owner])
    assert selectors.lookup_members("zs 9002") == ("phone_tail", [zhang])
    assert selectors.lookup_members("9002 zs") == ("phone_tail", [zhang])


def test_merged_members_are_not_found(store):
    from carecard.members import services

    a = make_member(store, name="周杰", birthday="1979-01-18")
    b = make_member(store, name="周杰", birthday="1979-01-18", phone="13700001111")
    services.member_merge(actor=None, survivor=a, absorbed=b)
    assert selectors.lookup_members("13700001111")[1] == []
    assert selectors.lookup_members("zj")[1] == [a]


def test_masking_and_health_access_by_role_and_store(store, other_store):
    member = make_member(store, phone="13812345678", consent_health_data=True, allergies="青霉素")
    own_clerk = make_staff(Role.CLERK, store)
    foreign_clerk = make_staff(Role.CLERK, other_store)
    marketing = make_staff(Role.MARKETING)
    admin = make_staff(Role.HQ_ADMIN)

    own = selectors.member_view(member=member, actor=own_clerk, with_health=True)
    assert own.phone == "13812345678"
    assert own.health["allergies"] == ["青霉素"]
    foreign = selectors.member_view(member=member, actor=foreign_clerk, with_health=True)
    assert foreign.phone == "138****5678"
    assert foreign.health == {}
    assert not foreign.can_see_health
    mkt = selectors.member_view(member=member, actor=marketing, with_health=True)
    assert mkt.phone == "138****5678"
    assert mkt.health == {}
    hq = selectors.member_view(member=member, actor=admin, with_health=True)
    assert hq.phone == "13812345678"
    assert hq.health["allergies"] == ["青霉素"]
    reads = AuditEntry.objects.filter(action=AuditAction.HEALTH_READ, member_id=member.pk)
    assert sorted(reads.values_list("actor_label", flat=True)) == sorted(
        [own_clerk.username, admin.username]
    )


def test_lookup_query_budget(zhang, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        selectors.lookup_members("13812345678")
    with django_assert_max_num_queries(1):
        selectors.lookup_members("zsf")
    with django_assert_max_num_queries(1):
        selectors.lookup_members("5678zsf")
    with django_assert_max_num_queries(1):
        selectors.lookup_members("CARD9001")

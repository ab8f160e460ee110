import pytest

from carecard.core.errors import DomainError, ValidationFailed
from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.members import selectors, services
from carecard.members.models import Card, CardKind, CardStatus, Member, MemberStatus
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db


def test_lost_card_is_frozen_then_replaced_with_fee(store, clerk):
    member = make_member(store, card_number="88001234")
    physical = member.cards.get(kind=CardKind.PHYSICAL)
    with pytest.raises(DomainError) as exc:
        services.card_replace(actor=clerk, card=physical, reason="lost")
    assert exc.value.code == "card_not_frozen"
    services.card_report_lost(actor=clerk, card=physical)
    physical.refresh_from_db()
    assert physical.status == CardStatus.FROZEN
    assert physical.frozen_at
    new = services.card_replace(actor=clerk, card=physical, new_number="88009999", reason="lost")
    physical.refresh_from_db()
    assert physical.status == CardStatus.REPLACED
    assert physical.replaced_by == new
    assert new.member == member
    assert new.status == CardStatus.ACTIVE
    assert str(new.fee) == "2.00"  # default lost-card fee
    assert (
        AuditEntry.objects.filter(action=AuditAction.CARD_REPLACE, member_id=member.pk).count() == 1
    )
    with pytest.raises(DomainError):
        services.card_report_lost(actor=clerk, card=physical)


def test_damaged_card_fee_and_taken_number(store, clerk):
    member = make_member(store, card_number="77001")
    make_member(store, card_number="77002")
    card = member.cards.get(number="77001")
    with pytest.raises(ValidationFailed):
        services.card_replace(actor=clerk, card=card, new_number="77002", reason="damaged")
    card.refresh_from_db()
    assert card.status == CardStatus.ACTIVE  # nothing half-written
    new = services.card_replace(actor=clerk, card=card, new_number="77003", reason="damaged")
    assert str(new.fee) == "1.00"


def test_marketing_role_cannot_manage_cards(store):
    member = make_member(store)
    marketing = make_staff(Role.MARKETING)
    with pytest.raises(DomainError) as exc:
        services.card_report_lost(actor=marketing, card=member.cards.get())
    assert exc.value.status == 403
    assert member.cards.get().status == CardStatus.ACTIVE


def test_merge_moves_cards_consents_referrals_and_is_audited(store):
    manager = make_staff(Role.STORE_MANAGER, store)
    survivor = make_member(store, name="王芳", birthday="1960-01-02")
    absorbed = make_member(
        store, name="王芳", birthday="1960-01-02", card_number="66001", email="wf@example.com"
    )
    referred = make_member(store, name="赵六", referrer=absorbed.referral_code)
    pairs = selectors.likely_duplicates()
    assert [(p.a.pk, p.b.pk, p.reason) for p in pairs] == [(survivor.pk, absorbed.pk, "birthday")]
    services.member_merge(actor=manager, survivor=survivor, absorbed=absorbed)
    absorbed.refresh_from_db()
    survivor.refresh_from_db()
    referred.refresh_from_db()
    assert absorbed.status == MemberStatus.MERGED
    assert absorbed.merged_into == survivor
    assert survivor.email == "wf@example.com"
    assert Card.objects.get(number="66001").member == survivor
    assert survivor.cards.filter(kind=CardKind.VIRTUAL, status=CardStatus.ACTIVE).count() == 1
    assert survivor.consents.filter(purpose="terms").count() == 2
    assert referred.referrer == survivor
    assert selectors.likely_duplicates() == []
    assert selectors.lookup_members("66001")[1] == [survivor]
    entry = AuditEntry.objects.get(action=AuditAction.MEMBER_MERGE)
    assert entry.detail["absorbed"] == absorbed.member_no


def test_clerk_cannot_merge_and_dismissed_pairs_leave_the_list(store, clerk):
    a = make_member(store, name="李雷", birthday="1970-07-07")
    b = make_member(store, name="李雷", birthday="1970-07-07")
    with pytest.raises(DomainError):
        services.member_merge(actor=clerk, survivor=a, absorbed=b)
    assert Member.objects.get(pk=b.pk).status == MemberStatus.ACTIVE
    services.duplicate_dismiss(actor=clerk, a=b, b=a)
    assert selectors.likely_duplicates() == []

import pytest

from carecard.core.errors import ValidationFailed
from carecard.members import services
from carecard.members.models import Member
from tests.factories import make_member, member_data

pytestmark = pytest.mark.django_db


def test_group_employees_are_members_of_the_group(store):
    group = services.group_create(
        store=store, name="浦东公交公司", contact_name="王经理", contact_phone="13800001234"
    )
    employee = services.member_enrol(actor=None, store=store, data=member_data(group=group.pk))
    assert employee.group == group
    assert employee.acquisition_channel == "group"
    assert list(group.members.all()) == [employee]
    before = Member.objects.count()
    with pytest.raises(ValidationFailed) as exc:
        services.member_enrol(actor=None, store=store, data=member_data(group="999999"))
    assert exc.value.errors[0].field == "group"
    assert Member.objects.count() == before


def test_household_links_members_who_keep_their_own_records(store):
    holder = make_member(store, name="陈父", consent_health_data=True, allergies="青霉素")
    child = make_member(store, name="陈子")
    household = services.household_create(holder=holder, name="陈家", share_points=True)
    services.household_add(household=household, member=child)
    holder.refresh_from_db()
    child.refresh_from_db()
    assert holder.household == household
    assert child.household == household
    assert child.allergies == []  # each person keeps their own health record
    assert holder.allergies == ["青霉素"]

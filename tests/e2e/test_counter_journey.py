"""A clerk at the counter, in Chinese: search → enrol → member page → card lost → replacement."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from carecard.core.models import AuditAction, AuditEntry
from carecard.core.roles import Role
from carecard.members.models import Card, CardKind, CardStatus, Member
from tests.e2e.helpers import login, shot
from tests.factories import make_member, make_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MEMBER_PAGE = re.compile(r"/members/(\d+)/$")


def test_clerk_searches_enrols_and_replaces_a_lost_card(page: Page, store) -> None:
    clerk = make_staff(Role.CLERK, store, username="clerk-zhang")
    make_member(store, name="张三丰", phone="13812345678", birthday="1962-04-09")
    make_member(store, name="张三", phone="13912340001")
    make_member(store, name="李四", phone="13712345678")

    login(page, "clerk-zhang")
    expect(page.get_by_test_id("scope")).to_contain_text(store.name)
    expect(page.get_by_test_id("nav-enrol")).to_be_visible()

    # Search as you type: phone tail + surname, then pinyin initials.
    page.get_by_test_id("nav-members").click()
    search = page.get_by_test_id("member-search")
    search.fill("5678 张")
    rows = page.get_by_test_id("result-row")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("result-link")).to_have_text("张三丰")
    # A clerk of the member's own store sees the full phone number.
    expect(rows.first.get_by_test_id("result-phone")).to_have_text("13812345678")
    expect(page.get_by_test_id("search-results")).to_contain_text("手机尾号 + 姓名")

    search.fill("zsf")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("result-link")).to_have_text("张三丰")
    expect(page.get_by_test_id("search-results")).to_contain_text("拼音")
    shot(page, "01-search-pinyin")

    search.fill("0000 王")
    expect(page.get_by_test_id("no-results")).to_contain_text("没有找到")
    expect(rows).to_have_count(0)

    # Enrolment: a bad phone is refused next to the field and nothing is written.
    page.get_by_test_id("nav-enrol").click()
    expect(page.get_by_role("heading", name="会员申请表", exact=True)).to_be_visible()
    page.fill("#f-name", "王秀英")
    page.fill("#f-phone", "12345")
    page.check("#f-gender-F")
    page.check("#f-cal-lunar")
    page.fill("#f-lunar-birthday", "1980-04-12")
    page.fill("#f-card-number", "P88000001")
    page.check("#f-interest-sleep")
    page.check("#f-consent-terms")
    page.check("#f-consent-marketing")
    before = Member.objects.count()
    page.get_by_test_id("enrol-submit").click()
    expect(page.get_by_test_id("error-phone")).to_have_text("手机号格式不正确")
    expect(page.get_by_test_id("form-errors")).to_contain_text("输入有误")
    shot(page, "02-enrol-bad-phone")
    assert Member.objects.count() == before
    assert not Card.objects.filter(number="P88000001").exists()
    # The form keeps what was typed.
    expect(page.locator("#f-name")).to_have_value("王秀英")
    expect(page.locator("#f-lunar-birthday")).to_have_value("1980-04-12")
    expect(page.locator("#f-consent-terms")).to_be_checked()

    page.fill("#f-phone", "13988776655")
    page.get_by_test_id("enrol-submit").click()
    expect(page).to_have_url(MEMBER_PAGE)
    expect(page.get_by_test_id("member-name")).to_have_text("王秀英")
    expect(page.get_by_test_id("message-success")).to_contain_text("已为 王秀英 建档")
    expect(page.get_by_test_id("member-phone")).to_have_text("13988776655")
    expect(page.get_by_test_id("profile")).to_contain_text("农历 1980-04-12")
    expect(page.get_by_test_id("profile")).to_contain_text("1980-05-25")
    expect(page.get_by_test_id("consent-terms")).to_have_attribute("data-granted", "1")
    expect(page.get_by_test_id("consent-marketing")).to_have_attribute("data-granted", "1")
    expect(page.get_by_test_id("consent-health_data")).to_have_attribute("data-granted", "0")
    card = page.get_by_test_id("card-P88000001")
    expect(card).to_have_attribute("data-status", "active")
    expect(card.get_by_test_id("card-status")).to_have_text("正常")
    shot(page, "03-member-page")

    member_pk = int(MEMBER_PAGE.search(page.url).group(1))
    member = Member.objects.get(pk=member_pk)
    assert (member.name, member.phone, member.gender) == ("王秀英", "13988776655", "F")
    assert member.birthday == dt.date(1980, 5, 25)
    assert member.birthday_is_lunar
    assert member.home_store_id == store.pk
    assert member.enrolled_by_id == clerk.pk
    expect(page.get_by_test_id("member-no")).to_have_text(member.member_no)

    # Report the physical card lost (a browser confirm), then replace it.
    page.on("dialog", lambda dialog: dialog.accept())
    card.get_by_test_id("card-lost").click()
    expect(card).to_have_attribute("data-status", "frozen")
    expect(card.get_by_test_id("card-status")).to_have_text("已挂失")
    expect(page.get_by_test_id("message-success")).to_contain_text("卡 P88000001 已挂失冻结")
    assert Card.objects.get(number="P88000001").status == CardStatus.FROZEN

    # A frozen card's replacement panel is open, offering the lost-card fee.
    reason = card.get_by_test_id("card-replace-reason")
    expect(reason).to_be_visible()
    expect(reason.locator("option[value=lost]")).to_have_text("挂失补卡（¥2.00）")
    reason.select_option("lost")
    card.get_by_test_id("card-replace-number").fill("P88000002")
    shot(page, "04-card-lost")
    card.get_by_test_id("card-replace").click()

    new_card = page.get_by_test_id("card-P88000002")
    expect(new_card).to_have_attribute("data-status", "active")
    expect(new_card.get_by_test_id("card-status")).to_have_text("正常")
    expect(new_card).to_contain_text("工本费 ¥2.00")
    old_card = page.get_by_test_id("card-P88000001")
    expect(old_card).to_have_attribute("data-status", "replaced")
    expect(old_card.get_by_test_id("card-status")).to_have_text("已补换")
    expect(old_card).to_contain_text("已换为新卡")
    expect(page.get_by_test_id("message-success")).to_contain_text(
        "已补发新卡 P88000002，收取工本费 ¥2.00"
    )
    # No more card actions on the replaced card.
    expect(old_card.get_by_test_id("card-lost")).to_have_count(0)
    expect(old_card.get_by_test_id("card-replace-open")).to_have_count(0)
    shot(page, "05-card-replaced")

    old = Card.objects.get(number="P88000001")
    new = Card.objects.get(number="P88000002")
    assert old.status == CardStatus.REPLACED
    assert old.replaced_by_id == new.pk
    assert old.frozen_at is not None
    assert old.closed_at is not None
    assert (new.member_id, new.kind, new.status) == (member_pk, CardKind.PHYSICAL, "active")
    assert new.fee == Decimal("2.00")
    virtual = Card.objects.filter(member_id=member_pk, kind=CardKind.VIRTUAL)
    assert [c.status for c in virtual] == [CardStatus.ACTIVE]

    trail = AuditEntry.objects.filter(member_id=member_pk)
    lost = trail.get(action=AuditAction.CARD_LOST)
    assert (lost.actor_id, lost.target) == (clerk.pk, "card:P88000001")
    replace = trail.get(action=AuditAction.CARD_REPLACE)
    assert replace.actor_id == clerk.pk
    assert replace.detail == {"new_card": "P88000002", "fee": "2.00", "reason": "lost"}
    assert trail.filter(action=AuditAction.MEMBER_ENROL, actor=clerk).count() == 1

    # The new card finds the member at the counter.
    page.get_by_test_id("quick-search").fill("P88000002")
    page.get_by_test_id("quick-search").press("Enter")
    expect(page.get_by_test_id("result-row")).to_have_count(1)
    expect(page.get_by_test_id("result-row")).to_have_attribute("data-member-no", member.member_no)

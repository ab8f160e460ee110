"""The member page's redemption section (P-4): the catalogue with cost, window, stock and
stores, and redeeming (points spent, coupon issued or gift taken from stock), with refusals in
Chinese next to the reward and nothing written."""

# ruff: noqa: F811 — fixtures imported from counter_fixtures / benefit_fixtures

from __future__ import annotations

import re

import pytest

from carecard.core.roles import Role
from carecard.coupons.models import Coupon, CouponSource
from carecard.loyalty import services as points_services
from carecard.loyalty.models import PointsAccount, PointsEntry, Reward, RewardRedemption
from carecard.members.models import Member
from tests.console.benefit_fixtures import catalogue, voucher  # noqa: F401 — fixtures
from tests.console.conftest import signed_in
from tests.console.counter_fixtures import frozen, member  # noqa: F401 — fixtures
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true", "HX-Target": "member-rewards"}


def rewards_url(member, action=""):
    return f"/members/{member.pk}/rewards/{action + '/' if action else ''}"


def give_points(member, points, store):
    points_services.points_adjust(
        member_id=member.pk,
        points=points,
        reason="测试",
        actor=make_staff(Role.STORE_MANAGER, store),
    )


def points(member):
    return PointsAccount.objects.get(pk=member.pk).balance


def test_catalogue_with_cost_window_stock_and_why_not(
    clerk_client, store, member, catalogue, frozen
):
    give_points(member, 120, store)
    response = clerk_client.get(rewards_url(member), headers=HX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert 'data-testid="rewards-available">120<' in page
    rows = {r["r"].name: r for r in response.context["rows"]}
    assert list(rows) == ["5元抵用券", "毛巾", "新年台历"]
    assert rows["5元抵用券"]["can"] is True
    assert rows["毛巾"]["can"] is True
    assert (rows["新年台历"]["can"], rows["新年台历"]["why_not"]) == (False, "只能在12月兑换")
    assert "兑换时间：全年" in page
    assert "兑换时间：12月" in page
    assert 'data-testid="reward-stock">库存 1<' in page
    assert 'data-testid="reward-stock">库存不限<' in page
    assert "兑换优惠券 · 减 ¥5" in page


def test_redeem_a_coupon_spends_points_and_issues_it(
    clerk, clerk_client, store, member, catalogue, voucher, frozen
):
    give_points(member, 120, store)
    reward = catalogue["voucher"]
    response = clerk_client.post(rewards_url(member, "redeem"), {"reward": reward.pk}, headers=HX)
    assert response.status_code == 200
    assert response["HX-Location"] == f'{{"path": "/members/{member.pk}/"}}'
    assert points(member) == 20
    redemption = RewardRedemption.objects.get()
    assert (redemption.store_id, redemption.reward_id) == (store.pk, reward.pk)
    assert redemption.entry.points == -100
    assert redemption.entry.actor_id == clerk.pk
    coupon = Coupon.objects.get()
    assert (coupon.member_id, coupon.template_id, coupon.source) == (
        member.pk,
        voucher.pk,
        CouponSource.POINTS_REDEMPTION,
    )
    page = clerk_client.get(f"/members/{member.pk}/").content.decode()
    assert f"已为 王秀英 兑换“5元抵用券”，使用 100 积分，券码 {coupon.code}" in page
    page = clerk_client.get(rewards_url(member)).content.decode()
    assert page.count('data-testid="redemption-row"') == 1
    assert "−100" in page


def test_redeem_a_gift_takes_it_from_stock(clerk_client, store, member, catalogue, frozen):
    give_points(member, 120, store)
    towel = catalogue["towel"]
    response = clerk_client.post(rewards_url(member, "redeem"), {"reward": towel.pk})
    assert response.status_code == 302
    assert Reward.objects.get(pk=towel.pk).stock == 0
    assert points(member) == 70
    # The last one is gone: refused next to the reward, nothing more is written.
    response = clerk_client.post(rewards_url(member, "redeem"), {"reward": towel.pk}, headers=HX)
    assert response.status_code == 422
    page = response.content.decode()
    assert 'data-testid="reward-error">礼品已兑完<' in page
    assert points(member) == 70
    assert RewardRedemption.objects.count() == 1


def test_a_double_submit_redeems_once(clerk_client, store, member, catalogue, frozen):
    give_points(member, 120, store)
    page = clerk_client.get(rewards_url(member)).content.decode()
    towel = catalogue["towel"]
    # The key the page rendered into the towel's form.
    key = re.search(rf'name="key" value="(console-[0-9a-f]+-{towel.pk})"', page).group(1)
    form = {"reward": towel.pk, "key": key}
    first = clerk_client.post(rewards_url(member, "redeem"), form)
    second = clerk_client.post(rewards_url(member, "redeem"), form)
    assert (first.status_code, second.status_code) == (302, 302)
    assert RewardRedemption.objects.count() == 1
    assert points(member) == 70
    assert Reward.objects.get(pk=towel.pk).stock == 0


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ("voucher", "可用积分不足：需要 100，可用 40"),
        ("calendar", "只能在12月兑换"),
    ],
)
def test_refusals_are_shown_next_to_the_reward_and_nothing_is_written(
    clerk_client, store, member, catalogue, frozen, reward, message
):
    give_points(member, 40, store)
    before = PointsEntry.objects.count()
    target = catalogue[reward]
    response = clerk_client.post(rewards_url(member, "redeem"), {"reward": target.pk}, headers=HX)
    assert response.status_code == 422
    page = response.content.decode()
    assert f'data-testid="reward-error">{message}<' in page
    assert points(member) == 40
    assert PointsEntry.objects.count() == before
    assert not RewardRedemption.objects.exists()
    assert not Coupon.objects.exists()


def test_store_restricted_reward(clerk_client, store, other_store, member, catalogue, frozen):
    give_points(member, 120, store)
    towel = catalogue["towel"]
    towel.store_ids = [other_store.pk]
    towel.save()
    response = clerk_client.get(rewards_url(member))
    row = next(r for r in response.context["rows"] if r["r"].pk == towel.pk)
    assert (row["can"], row["why_not"], row["stores"]) == (
        False,
        "本店不能兑换此项目",
        [other_store.name],
    )
    response = clerk_client.post(rewards_url(member, "redeem"), {"reward": towel.pk}, headers=HX)
    assert response.status_code == 422
    assert 'data-testid="reward-error">该门店不能兑换此项目<' in response.content.decode()
    assert Reward.objects.get(pk=towel.pk).stock == 1
    assert points(member) == 120


def test_pending_member_cannot_redeem(clerk_client, store, catalogue, frozen):
    waiting = make_member(store, name="周五")
    Member.objects.filter(pk=waiting.pk).update(status="pending")
    page = clerk_client.get(rewards_url(waiting)).content.decode()
    assert "会员状态不可兑换" in page
    assert 'data-can="1"' not in page


@pytest.mark.parametrize("role", [Role.MARKETING, Role.AUDITOR, Role.HQ_ADMIN])
def test_staff_without_a_till_cannot_redeem(store, member, catalogue, frozen, role):
    give_points(member, 120, store)
    client = signed_in(make_staff(role))
    page = client.get(rewards_url(member)).content.decode()
    assert 'data-testid="reward-redeem"' not in page
    response = client.post(rewards_url(member, "redeem"), {"reward": catalogue["voucher"].pk})
    assert response.status_code == 403
    assert points(member) == 120


def test_unknown_reward_is_404(clerk_client, member, frozen):
    assert clerk_client.post(rewards_url(member, "redeem"), {"reward": "999"}).status_code == 404
    assert clerk_client.post(rewards_url(member, "redeem"), {"reward": "x"}).status_code == 404


def test_rewards_in_english(clerk_client, store, member, catalogue, frozen):
    clerk_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    page = clerk_client.get(rewards_url(member)).content.decode()
    assert "Redemption" in page
    assert "Only in month 12" in page
    assert "When: All year" in page
    assert "1 in stock" in page

"""A clerk, in Chinese, works with a member's coupons, stored value and points: tops up stored
value (with the bonus tier), redeems points for a voucher on the member page, then sells at the
counter with two coupons (one picked from the member's coupons, one refused and removed) and
pays the rest with stored value; a manager issues a coupon by hand."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from carecard.checkout import services
from carecard.checkout.models import Sale, SaleTender
from carecard.checkout.services import LineIn
from carecard.core.roles import Role
from carecard.coupons import services as coupon_services
from carecard.coupons.models import Coupon, CouponStatus
from carecard.loyalty import services as points_services
from carecard.loyalty.models import PointsAccount, Reward, RewardKind
from carecard.wallet.models import TopupRule, WalletAccount
from tests.checkout.conftest import catalog, wangqu  # noqa: F401 — fixtures
from tests.e2e.helpers import login, logout, shot
from tests.factories import make_member, make_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

D = Decimal
RECEIPT = re.compile(r"/sales/(\d+)/$")


def _template(**overrides):
    values = {
        "name": "满50减10",
        "kind": "amount_off",
        "value": D("10.00"),
        "min_spend": D("50.00"),
        "valid_days": 30,
    }
    values.update(overrides)
    return coupon_services.coupon_template_create(**values)


def test_coupons_stored_value_and_points_at_the_counter(page: Page, store, catalog, wangqu) -> None:
    make_staff(Role.CLERK, store, username="clerk-li")
    make_staff(Role.STORE_MANAGER, store, username="manager-zhao")
    member = make_member(store, name="王秀英", phone="13912345678")
    ten_off = _template()
    coupon = coupon_services.coupon_issue(template=ten_off, member=member)
    voucher = _template(
        name="积分兑换5元券",
        value=D("5.00"),
        min_spend=D("0.00"),
        valid_days=90,
        points_funded=True,
        funded_by="points",
        stacking_group="points",
    )
    Reward.objects.create(
        name="5元抵用券", kind=RewardKind.COUPON, points=100, coupon_template=voucher
    )
    Reward.objects.create(name="保温杯", kind=RewardKind.GIFT, points=800, stock=3, position=1)
    Reward.objects.create(name="新年台历", kind=RewardKind.GIFT, points=30, stock=0, position=2)
    TopupRule.objects.create(name="充500送20", min_amount=D("500"), bonus=D("20"))
    points_services.points_adjust(
        member_id=member.pk,
        points=150,
        reason="开卡礼",
        actor=make_staff(Role.STORE_MANAGER, store),
    )

    login(page, "clerk-li")
    page.goto(f"/members/{member.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())

    # The sections load after the page: coupons, stored value, rewards.
    coupons = page.get_by_test_id("member-coupons")
    expect(coupons.get_by_test_id("coupon-row")).to_have_count(1)
    expect(coupons).to_contain_text("满 ¥50 减 ¥10")
    wallet = page.get_by_test_id("member-wallet")
    expect(wallet.get_by_test_id("wallet-balance")).to_have_text("¥0.00")
    rewards = page.get_by_test_id("member-rewards")
    expect(rewards.get_by_test_id("reward-row")).to_have_count(3)
    expect(rewards.get_by_test_id("reward-why-not").nth(0)).to_have_text("积分不足，还差 650 分")
    expect(rewards.get_by_test_id("reward-why-not").nth(1)).to_have_text("礼品已兑完")

    # Top up: a bad amount is refused next to the field, nothing is written.
    wallet.get_by_test_id("wallet-topup").locator("summary").click()
    wallet.get_by_test_id("topup-amount").fill("12.345")
    wallet.get_by_test_id("topup-submit").click()
    wallet = page.get_by_test_id("member-wallet")
    expect(wallet.get_by_test_id("error-amount")).to_have_text(
        "请输入大于 0 的金额（最多两位小数）"
    )
    assert not WalletAccount.objects.filter(pk=member.pk).exists()
    # Over the unnamed limit: the field error names the largest top-up that fits.
    wallet.get_by_test_id("topup-amount").fill("1000")
    wallet.get_by_test_id("topup-submit").click()
    wallet = page.get_by_test_id("member-wallet")
    expect(wallet.get_by_test_id("error-amount")).to_contain_text("本次最多充值 980.00 元")
    shot(page, "benefits-01-topup-refused")
    wallet.get_by_test_id("topup-amount").fill("500")
    wallet.get_by_test_id("topup-tender").select_option("wechat")
    wallet.get_by_test_id("topup-submit").click()
    expect(page.get_by_test_id("message-success")).to_contain_text(
        "已为 王秀英 充值 ¥500.00，赠送 ¥20.00，储值余额 ¥520.00"
    )
    wallet = page.get_by_test_id("member-wallet")
    expect(wallet.get_by_test_id("wallet-balance")).to_have_text("¥520.00")
    expect(wallet.get_by_test_id("wallet-bonus")).to_have_text("¥20.00")
    expect(wallet.get_by_test_id("wallet-entry")).to_have_count(2)

    # Redeem 100 points for the ¥5 voucher.
    rewards = page.get_by_test_id("member-rewards")
    rewards.get_by_test_id("reward-row").first.get_by_test_id("reward-redeem").click()
    expect(page.get_by_test_id("message-success")).to_contain_text(
        "已为 王秀英 兑换“5元抵用券”，使用 100 积分，券码"
    )
    expect(page.get_by_test_id("rewards-available")).to_have_text("50")
    expect(page.get_by_test_id("redemption-row")).to_have_count(1)
    expect(page.get_by_test_id("member-coupons").get_by_test_id("coupon-row")).to_have_count(2)
    shot(page, "benefits-02-member-page")
    redeemed = Coupon.objects.get(template=voucher)
    assert PointsAccount.objects.get(pk=member.pk).balance == 50

    # The counter: identify the member, scan two items.
    page.get_by_test_id("nav-counter").click()
    page.get_by_test_id("counter-member-search").fill("5678 王")
    expect(page.get_by_test_id("counter-member-pick")).to_have_count(1)
    page.get_by_test_id("counter-member-pick").click()
    expect(page.get_by_test_id("counter-wallet-balance")).to_have_text("¥520.00")
    expect(page.get_by_test_id("counter-member-coupon")).to_have_count(2)
    scan = page.get_by_test_id("counter-scan")
    scan.fill("P-COLD")
    scan.press("Enter")
    expect(page.get_by_test_id("basket-line")).to_have_count(1)
    scan.fill("P-VITC")
    scan.press("Enter")
    expect(page.get_by_test_id("basket-line")).to_have_count(2)
    lines = [LineIn("P-COLD", 1), LineIn("P-VITC", 1)]
    plain = services.sale_quote(store_id=store.pk, member_id=member.pk, lines=lines)
    expect(page.get_by_test_id("total-net")).to_have_text(f"¥{plain.basket.net}")
    page.wait_for_load_state("networkidle")

    # A code from someone's paper that is not a real code: refused, in Chinese.
    page.get_by_test_id("counter-coupon-code").fill("ABCDEFGHJKLM")
    page.get_by_test_id("counter-coupon-code").press("Enter")
    refused = page.locator('[data-testid="counter-coupon"][data-state="refused"]')
    expect(refused).to_have_count(1)
    expect(refused.get_by_test_id("counter-coupon-refused")).to_contain_text("券码有误")
    expect(page.get_by_test_id("counter-commit")).to_be_disabled()
    shot(page, "benefits-03-counter-refused")
    refused.get_by_test_id("counter-coupon-remove").click()
    expect(page.get_by_test_id("counter-coupon")).to_have_count(0)

    # Pick both of the member's coupons (满50减10 and the ¥5 voucher).
    page.locator(
        f'[data-testid="counter-member-coupon"][data-code="{coupon.code}"]'
    ).get_by_test_id("counter-coupon-pick").click()
    expect(page.get_by_test_id("counter-coupon")).to_have_count(1)
    page.get_by_test_id("counter-coupon-pick").click()
    applied = page.locator('[data-testid="counter-coupon"][data-state="applied"]')
    expect(applied).to_have_count(2)
    quote = services.sale_quote(
        store_id=store.pk,
        member_id=member.pk,
        lines=lines,
        coupons=[coupon.code, redeemed.code],
    )
    net = quote.basket.net
    assert quote.basket.coupon_discount_total == D("15.00")
    expect(page.get_by_test_id("total-coupons")).to_have_text("−¥15.00")
    expect(page.get_by_test_id("total-net")).to_have_text(f"¥{net}")

    # The rest with stored value.
    page.get_by_test_id("tender-stored-value-fill").click()
    expect(page.get_by_test_id("tender-stored_value")).to_have_value(str(net))
    expect(page.get_by_test_id("pay-status")).to_contain_text("金额已齐")
    expect(page.get_by_test_id("pay-cash")).to_have_text("¥0.00")
    shot(page, "benefits-04-counter-quote")
    page.get_by_test_id("counter-commit").click()
    expect(page).to_have_url(RECEIPT)
    expect(page.get_by_test_id("message-success")).to_contain_text("已结算")
    expect(page.get_by_test_id("receipt-net")).to_have_text(f"¥{net}")
    shot(page, "benefits-05-receipt")

    sale = Sale.objects.get()
    assert sale.net_total == net
    assert list(SaleTender.objects.values_list("kind", "amount")) == [("stored_value", net)]
    assert WalletAccount.objects.get(pk=member.pk).balance == D("520.00") - net
    used = Coupon.objects.filter(pk__in=[coupon.pk, redeemed.pk])
    assert {c.status for c in used} == {CouponStatus.REDEEMED}
    assert {c.redeemed_reference for c in used} == {f"sale:{sale.pk}"}

    # The member page shows the coupons used and the payment.
    page.goto(f"/members/{member.pk}/")
    wallet = page.get_by_test_id("member-wallet")
    expect(wallet.get_by_test_id("wallet-balance")).to_have_text(f"¥{D('520.00') - net}")
    expect(wallet.locator('[data-testid="wallet-entry"][data-kind="pay"]')).to_have_count(1)
    page.get_by_test_id("coupons-tab-used").click()
    expect(page.get_by_test_id("coupons-table")).to_have_attribute("data-tab", "used")
    expect(page.get_by_test_id("coupon-row")).to_have_count(2)
    shot(page, "benefits-06-member-after-sale")
    # A clerk does not issue coupons by hand.
    expect(page.get_by_test_id("coupon-issue")).to_have_count(0)
    logout(page)

    # The store manager issues a coupon by hand.
    login(page, "manager-zhao")
    page.goto(f"/members/{member.pk}/coupons/")
    expect(page.get_by_role("heading", name="王秀英的优惠券")).to_be_visible()
    page.get_by_test_id("coupon-issue").locator("summary").click()
    page.get_by_test_id("issue-submit").click()
    expect(page.get_by_test_id("error-template")).to_have_text("请选择可发放的券")
    page.get_by_test_id("issue-template").select_option(str(ten_off.pk))
    shot(page, "benefits-07-issue")
    page.get_by_test_id("issue-submit").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("已向 王秀英 发放“满50减10”")
    issued = Coupon.objects.filter(template=ten_off, status=CouponStatus.ISSUED).get()
    assert issued.source == "manual"
    # The standalone pages of the other two sections.
    page.goto(f"/members/{member.pk}/wallet/")
    expect(page.get_by_role("heading", name="王秀英的储值")).to_be_visible()
    shot(page, "benefits-08-wallet-page")
    page.goto(f"/members/{member.pk}/rewards/")
    expect(page.get_by_role("heading", name="王秀英的积分兑换")).to_be_visible()
    shot(page, "benefits-09-rewards-page")

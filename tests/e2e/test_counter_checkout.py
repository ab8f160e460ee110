"""A clerk sells at the console counter (收银台) and takes a return from the receipt, in Chinese:
find the member, scan two SKUs, see the member discount and the points in the live quote, pay
cash, print-ready receipt; then return one item."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest / counter_fixtures

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from carecard.checkout import services
from carecard.checkout.models import Sale, SaleKind
from carecard.checkout.services import LineIn
from carecard.core.roles import Role
from carecard.loyalty.models import PointsAccount, Tier
from tests.checkout.conftest import catalog, wangqu  # noqa: F401 — fixtures
from tests.e2e.helpers import login, shot
from tests.factories import make_member, make_staff

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECEIPT = re.compile(r"/sales/(\d+)/$")


def test_clerk_sells_at_the_counter_and_takes_a_return(page: Page, store, catalog, wangqu) -> None:
    make_staff(Role.CLERK, store, username="clerk-li")
    member = make_member(store, name="王秀英", phone="13912345678")
    Tier.objects.create(code="ordinary", name="普通卡", rank=0, threshold=0)
    Tier.objects.create(code="silver", name="银卡", rank=1, threshold=500)
    # What the till will charge today (a lunar member day gives 9.5折, any other day 9.8折).
    quote = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=[LineIn("P-COLD", 2), LineIn("P-VITC", 1)]
    )
    net = quote.basket.net
    reason = quote.basket.lines[0].discounts[0].reason
    points = quote.earning.total
    assert reason in ("会员折扣 9.8折", "会员日 9.5折")

    login(page, "clerk-li")
    page.get_by_test_id("nav-counter").click()
    expect(page.get_by_role("heading", name="收银台", exact=True)).to_be_visible()
    expect(page.get_by_test_id("counter-scan")).to_be_focused()

    # Identify the member as you type: last four digits + surname, then pick.
    page.get_by_test_id("counter-member-search").fill("5678 王")
    expect(page.get_by_test_id("counter-member-pick")).to_have_count(1)
    page.get_by_test_id("counter-member-pick").click()
    selected = page.get_by_test_id("counter-member-selected")
    expect(selected).to_have_attribute("data-member-no", member.member_no)
    expect(selected).to_contain_text("13912345678")
    expect(page.get_by_test_id("counter-member-tier")).to_have_text("普通卡")

    # Scan two SKUs (Enter adds); an unknown code is refused and the basket kept.
    scan = page.get_by_test_id("counter-scan")
    scan.fill("P-COLD")
    scan.press("Enter")
    lines = page.get_by_test_id("basket-line")
    expect(lines).to_have_count(1)
    expect(scan).to_have_value("")
    scan.fill("NO-SUCH")
    scan.press("Enter")
    expect(page.get_by_test_id("error-add")).to_have_text("没有找到商品：NO-SUCH")
    scan.fill("P-VITC")
    scan.press("Enter")
    expect(lines).to_have_count(2)
    # Let the quote of the two lines land before editing (a late swap would drop the edit).
    two = services.sale_quote(
        store_id=store.pk, member_id=member.pk, lines=[LineIn("P-COLD", 1), LineIn("P-VITC", 1)]
    ).basket.net
    expect(page.get_by_test_id("total-net")).to_have_text(f"¥{two}")
    page.wait_for_load_state("networkidle")
    # Change a quantity in the basket: the quote follows.
    lines.first.get_by_test_id("line-qty").fill("2")
    lines.first.get_by_test_id("line-qty").press("Tab")
    expect(page.get_by_test_id("total-net")).to_have_text(f"¥{net}")
    expect(lines.first.get_by_test_id("line-discount")).to_contain_text(reason)
    expect(page.get_by_test_id("points-to-earn")).to_have_text(str(points))
    expect(page.get_by_test_id("quote-tier")).to_contain_text(
        f"距 银卡 还差 500 分（本单 +{points} 分）"
    )

    # Cash: blank cash takes the whole amount; the change for a ¥100 note.
    page.get_by_test_id("cash-given").fill("100")
    page.get_by_test_id("cash-given").press("Tab")
    expect(page.get_by_test_id("pay-change")).to_have_text(f"¥{Decimal('100') - net}")
    expect(page.get_by_test_id("pay-status")).to_contain_text("金额已齐")
    shot(page, "counter-01-quote")

    # A double-click still records one sale (the same idempotency key replays).
    page.get_by_test_id("counter-commit").dblclick()
    expect(page).to_have_url(RECEIPT)
    expect(page.get_by_test_id("message-success")).to_contain_text("已结算")
    receipt = page.get_by_test_id("receipt")
    expect(receipt).to_have_attribute("data-kind", "sale")
    expect(page.get_by_test_id("receipt-net")).to_have_text(f"¥{net}")
    expect(page.get_by_test_id("receipt-discount").first).to_contain_text(reason)
    expect(page.get_by_test_id("receipt-points-earned")).to_have_text(f"+{points}")
    expect(page.get_by_test_id("receipt-points-balance")).to_have_text(str(points))
    expect(page.get_by_test_id("receipt-member")).to_contain_text("139****5678")
    expect(page.get_by_test_id("receipt-print")).to_be_visible()
    shot(page, "counter-02-receipt")
    sale = Sale.objects.get()
    assert (sale.net_total, sale.points_earned, sale.member_id) == (net, points, member.pk)
    assert page.url.endswith(f"/sales/{sale.pk}/")

    # Return one 感冒灵 from the receipt page.
    page.on("dialog", lambda dialog: dialog.accept())
    returns = page.get_by_test_id("return-line")
    expect(returns).to_have_count(2)
    returns.first.get_by_test_id("return-qty").fill("1")
    page.get_by_test_id("return-submit").click()
    expect(page.get_by_test_id("receipt")).to_have_attribute("data-kind", "return")
    expect(page.get_by_test_id("message-success")).to_contain_text("已退货")
    ret = Sale.objects.get(kind=SaleKind.RETURN)
    refund = quote.basket.lines[0].net / 2
    assert ret.net_total == refund
    expect(page.get_by_test_id("refund-money")).to_have_text(f"¥{refund}")
    expect(page.get_by_test_id("receipt-original")).to_have_text(sale.receipt_no)
    shot(page, "counter-03-return")
    balance = PointsAccount.objects.get(pk=member.pk).balance
    assert balance == points + ret.points_earned
    expect(page.get_by_test_id("receipt-points-balance")).to_have_text(str(balance))

    # The member page shows the sale, the return and the points ledger.
    page.goto(f"/members/{member.pk}/")
    expect(page.get_by_test_id("sale-row")).to_have_count(2)
    expect(page.get_by_test_id("ledger-row")).to_have_count(2)
    expect(page.get_by_test_id("points-balance")).to_have_text(str(balance))
    expect(page.get_by_test_id("tier-name")).to_have_text("普通卡")
    shot(page, "counter-04-member")

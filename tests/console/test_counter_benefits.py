"""The counter with coupons and stored value (C-1, C-2, C-4a, V-3, S-1): the member's usable
coupons to pick, printed codes typed in, refusals in Chinese, the stored-value tender next to
the others, and a commit that uses the coupon and takes the stored value exactly once."""

# ruff: noqa: F811 — fixtures imported from tests.checkout.conftest / counter_fixtures

from __future__ import annotations

import pytest

from carecard.checkout.models import Sale, SaleDiscount, SaleTender
from carecard.core.models import IdempotencyRecord
from carecard.core.roles import Role
from carecard.coupons import services as coupon_services
from carecard.coupons.models import Coupon, CouponStatus
from carecard.wallet.models import WalletAccount, WalletEntry
from tests.console.benefit_fixtures import (  # noqa: F401 — fixtures
    bonus_tier,
    coupon,
    make_template,
    ten_off,
    topup,
)
from tests.console.counter_fixtures import (  # noqa: F401 — fixtures
    D,
    catalog,
    frozen,
    member,
    wangqu,
)
from tests.console.test_counter import HX, URL, basket, post
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db


def test_member_coupons_are_offered_and_a_picked_one_is_applied(
    clerk_client, member, coupon, catalog, wangqu, frozen
):
    response = post(clerk_client, basket(member))
    page = response.content.decode()
    assert [c.code for c in response.context["member_coupons"]] == [coupon.code]
    assert 'data-testid="counter-member-coupon"' in page
    assert "满 ¥50 减 ¥10" in page
    assert "2026-03-26 到期" in page  # 30 days from 2026-02-25, issue day included

    response = post(clerk_client, basket(member, pick_coupon=coupon.code))
    page = response.content.decode()
    quote = response.context["quote"]
    # 88.20 after the member's 9.8折, then 满50减10.
    assert (quote.basket.member_discount_total, quote.basket.coupon_discount_total) == (
        D("1.80"),
        D("10.00"),
    )
    assert quote.basket.net == D("78.20")
    assert response.context["f"].coupons == [coupon.code]
    assert response.context["member_coupons"] == []  # picked: no longer offered
    assert f'name="coupon" value="{coupon.code}"' in page
    assert 'data-state="applied"' in page
    assert 'data-testid="counter-coupon-amount">−¥10.00<' in page
    assert 'data-testid="total-coupons">−¥10.00<' in page
    assert 'data-testid="total-net">¥78.20<' in page
    assert "优惠券「满50减10」满50减10" in page  # the engine's reason on the lines
    # Dropped again: back to the member price.
    response = post(clerk_client, basket(member, coupon=coupon.code, drop_coupon=coupon.code))
    assert response.context["f"].coupons == []
    assert response.context["quote"].basket.net == D("88.20")


def test_commit_with_coupon_and_stored_value_uses_both_once(
    clerk, clerk_client, store, member, coupon, bonus_tier, catalog, wangqu, frozen
):
    topup(member, "500.00", store=store)
    assert WalletAccount.objects.get(pk=member.pk).balance == D("520.00")
    data = basket(member, coupon=coupon.code, t_stored_value="78.20", commit="1")
    response = post(clerk_client, data)
    sale = Sale.objects.get()
    assert response["HX-Location"] == f'{{"path": "/sales/{sale.pk}/"}}'
    assert (sale.discount_total, sale.net_total) == (D("11.80"), D("78.20"))
    assert list(SaleTender.objects.values_list("kind", "amount")) == [("stored_value", D("78.20"))]
    used = Coupon.objects.get(pk=coupon.pk)
    assert (used.status, used.redeemed_amount, used.redeemed_reference) == (
        CouponStatus.REDEEMED,
        D("10.00"),
        f"sale:{sale.pk}",
    )
    assert sum(d.amount for d in SaleDiscount.objects.filter(coupon_code=coupon.code)) == D("10.00")
    account = WalletAccount.objects.get(pk=member.pk)
    assert account.balance == D("441.80")
    pay = WalletEntry.objects.get(kind="pay")
    assert (pay.amount, pay.reference, pay.store_id, pay.actor_id) == (
        D("-78.20"),
        f"sale:{sale.pk}",
        store.pk,
        clerk.pk,
    )
    # A double submit replays: one sale, one payment, the coupon used once.
    again = post(clerk_client, data)
    assert again["HX-Location"] == response["HX-Location"]
    assert Sale.objects.count() == 1
    assert WalletEntry.objects.filter(kind="pay").count() == 1
    assert WalletAccount.objects.get(pk=member.pk).balance == D("441.80")


def test_stored_value_balance_shown_and_pay_the_rest(
    clerk_client, store, member, catalog, wangqu, frozen
):
    topup(member, "50.00", store=store)
    response = post(clerk_client, basket(member, t_wechat="20.00", sv_fill="1"))
    page = response.content.decode()
    assert 'data-testid="counter-wallet-balance">¥50.00<' in page
    assert "余额 ¥50.00" in page
    # 88.20 − 20.00 by WeChat = 68.20, but only 50.00 is held: the rest stays for cash.
    assert response.context["f"].tenders["stored_value"] == "50.00"
    pay = response.context["pay"]
    assert (pay.cash, pay.due) == (D("18.20"), D("0.00"))
    assert [(t.kind, t.amount) for t in pay.tenders] == [
        ("cash", D("18.20")),
        ("wechat", D("20.00")),
        ("stored_value", D("50.00")),
    ]


def test_stored_value_beyond_the_balance_is_a_field_error_and_nothing_is_written(
    clerk_client, store, member, catalog, wangqu, frozen
):
    topup(member, "30.00", store=store)
    response = post(clerk_client, basket(member, t_stored_value="88.20"))
    page = response.content.decode()
    assert 'data-testid="error-t_stored_value">储值余额不足，可用 ¥30.00<' in page
    assert 'disabled data-testid="counter-commit"' in " ".join(page.split())
    # Posted anyway: the service refuses under its lock, next to the same field.
    response = post(clerk_client, basket(member, t_stored_value="88.20", commit="1"))
    assert response.status_code == 422
    page = response.content.decode()
    assert 'data-testid="error-t_stored_value">储值余额不足：需要 88.20 元，可用 30.00 元<' in page
    assert not Sale.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert WalletAccount.objects.get(pk=member.pk).balance == D("30.00")
    assert not WalletEntry.objects.filter(kind="pay").exists()


def test_stored_value_needs_a_member(clerk_client, catalog, wangqu, frozen):
    response = post(clerk_client, basket(t_stored_value="90.00", commit="1"))
    assert response.status_code == 422
    assert 'data-testid="error-t_stored_value">储值支付需要会员<' in response.content.decode()
    assert not Sale.objects.exists()


def test_a_printed_code_typed_in_is_applied(clerk_client, store, member, catalog, wangqu, frozen):
    template = make_template(name="纸质券满50减5", value=D("5.00"))
    manager = make_staff(Role.STORE_MANAGER, store)
    batch = coupon_services.coupon_batch_create(template=template, count=1, actor=manager)
    code = Coupon.objects.get(batch=batch).code
    # Typed the way a clerk reads it off the paper: lower case, with a hyphen.
    typed = f"{code[:4].lower()}-{code[4:]}"
    response = post(clerk_client, basket(member, coupon_add=typed))
    assert response.context["f"].coupons == [code]
    assert response.context["quote"].basket.net == D("83.20")


@pytest.mark.parametrize(
    ("setup", "reason", "text"),
    [
        ("unknown", "invalid_code", "券码有误（校验不符），请核对"),
        ("other_member", "not_owner", "该券不属于当前会员"),
        ("used", "already_used", "该券已使用（2026-02-25）"),
        ("min_spend", "min_spend_not_met", "未满足使用门槛：适用商品金额 ¥39.20，需满 ¥50"),
    ],
)
def test_refused_coupons_say_why_in_chinese_and_block_the_commit(
    clerk_client, store, member, ten_off, catalog, wangqu, frozen, setup, reason, text
):
    if setup == "unknown":
        code = "ABCDEFGHJKLM"
    elif setup == "other_member":
        other = make_member(store, name="李四")
        code = coupon_services.coupon_issue(template=ten_off, member=other).code
    else:
        code = coupon_services.coupon_issue(template=ten_off, member=member).code
    if setup == "used":
        coupon_services.coupons_redeem(
            codes=[code],
            member_id=member.pk,
            store_id=store.pk,
            at=frozen,
            reference="sale:0",
            amounts={code: D("10.00")},
        )
    data = basket(member, coupon_add=code)
    if setup == "min_spend":
        data.update(sku=["P-VITC"], qty=["1"])
    response = post(clerk_client, data)
    page = response.content.decode()
    refused = response.context["quote"].coupons_refused
    assert [r.reason_code for r in refused] == [reason]
    assert f'data-reason="{reason}"' in page
    assert 'data-testid="counter-coupon-refused">' + text in page
    assert 'data-testid="counter-commit"' in page
    assert 'disabled data-testid="counter-commit"' in " ".join(page.split())
    # Posted anyway (a stale page): the service refuses it, naming the coupon.
    response = post(clerk_client, {**data, "coupon_add": "", "coupon": code, "commit": "1"})
    assert response.status_code == 422
    page = response.content.decode()
    # Named once: the unknown-code message already ends with the code.
    named = f"{text}：{code}" if setup == "unknown" else f"{code}：{text}"
    assert f'data-testid="error-coupons">{named}' in page
    assert "请移除不能使用的券后再结算" in page
    assert not Sale.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert not WalletEntry.objects.exists()


def test_refusal_is_translated_in_english(clerk_client, store, member, catalog, wangqu, frozen):
    clerk_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    response = post(clerk_client, basket(member, coupon_add="ABCD-EFGH-JKLM"))
    page = response.content.decode()
    assert "Wrong coupon code (check character mismatch); please check it" in page
    assert "Stored value" in page


def test_same_code_twice_is_refused_at_the_box(
    clerk_client, member, coupon, catalog, wangqu, frozen
):
    response = post(clerk_client, basket(member, coupon=coupon.code, coupon_add=coupon.code))
    assert response.context["f"].coupons == [coupon.code]
    assert f'data-testid="error-coupon_add">券 {coupon.code} 已在本单中<' in (
        response.content.decode()
    )


def test_coupon_used_elsewhere_between_quote_and_commit(
    clerk_client, store, member, coupon, catalog, wangqu, frozen, monkeypatch
):
    """Another counter redeems the coupon after this page priced it: the commit is refused
    with the reason next to the coupon, and nothing is written."""
    from carecard.checkout import services as checkout

    real = checkout.sale_commit

    def racing_commit(**kwargs):
        coupon_services.coupons_redeem(
            codes=[coupon.code],
            member_id=member.pk,
            store_id=store.pk,
            at=frozen,
            reference="sale:elsewhere",
            amounts={coupon.code: D("10.00")},
        )
        return real(**kwargs)

    monkeypatch.setattr(checkout, "sale_commit", racing_commit)
    response = post(clerk_client, basket(member, coupon=coupon.code, commit="1"))
    assert response.status_code == 422
    assert "该券已使用" in response.content.decode()
    assert not Sale.objects.exists()


def test_counter_with_coupons_query_budget(
    clerk_client, member, coupon, catalog, wangqu, frozen, django_assert_max_num_queries
):
    for _i in range(5):
        coupon_services.coupon_issue(template=coupon.template, member=member)
    # session, user, member, wallet, offered coupons, two quotes' reads (with the coupons),
    # points summary, tier standing, products
    with django_assert_max_num_queries(24):
        response = post(clerk_client, basket(member, coupon=coupon.code, t_insurance_pool="10.00"))
    assert response.status_code == 200
    assert len(response.context["member_coupons"]) == 5


def test_the_counter_form_posts_from_the_page(clerk_client, member, coupon, catalog, wangqu):
    """The full page renders the coupon box and the stored-value tender for a member."""
    response = clerk_client.post(URL, basket(member), headers={**HX, "HX-Target": "x"})
    page = response.content.decode()
    assert 'data-testid="counter-coupon-code"' in page
    assert 'data-testid="tender-stored_value"' in page


def test_receipt_shows_the_stored_value_left_and_a_return_gives_it_back(
    clerk_client, store, member, coupon, catalog, wangqu, frozen
):
    topup(member, "100.00", store=store)
    data = basket(member, coupon=coupon.code, t_stored_value="78.20", commit="1")
    post(clerk_client, data)
    sale = Sale.objects.get()
    page = clerk_client.get(f"/sales/{sale.pk}/").content.decode()
    assert 'data-testid="tender-stored_value">¥78.20<' in page
    assert 'data-testid="receipt-wallet-balance">¥21.80<' in page
    # The whole sale back: the stored value and the coupon return to the member.
    response = clerk_client.post(
        f"/sales/{sale.pk}/return/", {"key": "ret-1", "qty_1": "2", "qty_2": "1"}
    )
    assert response.status_code == 302
    ret = Sale.objects.get(kind="return")
    assert WalletAccount.objects.get(pk=member.pk).balance == D("100.00")
    assert Coupon.objects.get(pk=coupon.pk).status == CouponStatus.ISSUED
    page = clerk_client.get(f"/sales/{ret.pk}/").content.decode()
    assert 'data-testid="tender-stored_value">¥78.20<' in page
    assert 'data-testid="receipt-wallet-balance">¥100.00<' in page

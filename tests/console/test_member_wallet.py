"""The member page's stored-value section (S-1, S-2): balance in principal and bonus, entries,
top-up with bonus tiers, the cap and real-name limits as field errors, and the cash refund."""

# ruff: noqa: F811 — fixtures imported from counter_fixtures / benefit_fixtures

from __future__ import annotations

import pytest

from carecard.core.roles import Role
from carecard.members.models import Member
from carecard.wallet.models import RefundRule, WalletAccount, WalletEntry, WalletPolicy
from tests.console.benefit_fixtures import bonus_tier, topup  # noqa: F401 — fixtures
from tests.console.conftest import signed_in
from tests.console.counter_fixtures import D, frozen, member  # noqa: F401 — fixtures
from tests.factories import make_member, make_staff, valid_id

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true", "HX-Target": "member-wallet"}


def wallet_url(member, action=""):
    return f"/members/{member.pk}/wallet/{action + '/' if action else ''}"


def balance(member):
    account = WalletAccount.objects.filter(pk=member.pk).first()
    return (account.balance, account.principal, account.bonus) if account else None


def test_member_page_loads_the_sections(clerk_client, member):
    page = clerk_client.get(f"/members/{member.pk}/").content.decode()
    for section in ("wallet", "coupons", "rewards"):
        assert f'hx-get="/members/{member.pk}/{section}/" hx-trigger="load"' in page


def test_balance_entries_and_forms_for_a_clerk(clerk_client, store, member, bonus_tier, frozen):
    topup(member, "500.00", store=store)
    response = clerk_client.get(wallet_url(member), headers=HX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert 'data-testid="wallet-balance">¥520.00<' in page
    assert 'data-testid="wallet-principal">¥500.00<' in page
    assert 'data-testid="wallet-bonus">¥20.00<' in page
    # Not registered by real name: held to the unnamed limit.
    assert "未实名 · 余额上限 ¥1000.00" in page
    assert [r["e"].kind for r in response.context["entries"]] == ["bonus", "topup"]
    assert page.count('data-testid="wallet-entry"') == 2
    assert "+500.00" in page
    assert "充500送20" in page
    # A clerk tops up and refunds at the counter (card.manage).
    assert 'data-testid="wallet-topup"' in page
    assert 'data-testid="wallet-refund"' in page
    assert "充 ¥500.00 送 ¥20.00" in page
    assert "可退 ¥500.00" in page  # the bonus is not refundable by default


def test_topup_with_bonus_writes_entries_and_replays_on_double_submit(
    clerk, clerk_client, store, member, bonus_tier, frozen
):
    data = {"amount": "500", "tender": "wechat", "key": "console-k1"}
    response = clerk_client.post(wallet_url(member, "topup"), data, headers=HX)
    assert response.status_code == 200
    assert response["HX-Location"] == f'{{"path": "/members/{member.pk}/"}}'
    assert balance(member) == (D("520.00"), D("500.00"), D("20.00"))
    topup_entry = WalletEntry.objects.get(kind="topup")
    assert (topup_entry.amount, topup_entry.tender, topup_entry.store_id) == (
        D("500.00"),
        "wechat",
        store.pk,
    )
    assert (topup_entry.actor_id, topup_entry.reference) == (clerk.pk, "console-k1")
    assert WalletEntry.objects.get(kind="bonus").amount == D("20.00")
    again = clerk_client.post(wallet_url(member, "topup"), data)
    assert again.status_code == 302
    assert WalletEntry.objects.count() == 2
    assert balance(member) == (D("520.00"), D("500.00"), D("20.00"))
    page = clerk_client.get(f"/members/{member.pk}/").content.decode()
    assert "已为 王秀英 充值 ¥500.00，赠送 ¥20.00，储值余额 ¥520.00" in page


@pytest.mark.parametrize(
    ("amount", "tender", "field", "message"),
    [
        ("", "cash", "amount", "请输入大于 0 的金额（最多两位小数）"),
        ("0", "cash", "amount", "请输入大于 0 的金额（最多两位小数）"),
        ("12.345", "cash", "amount", "请输入大于 0 的金额（最多两位小数）"),
        ("abc", "cash", "amount", "请输入大于 0 的金额（最多两位小数）"),
        ("100", "stored_value", "tender", "请选择收款方式"),
    ],
)
def test_bad_input_is_a_field_error_and_nothing_is_written(
    clerk_client, member, frozen, amount, tender, field, message
):
    response = clerk_client.post(
        wallet_url(member, "topup"), {"amount": amount, "tender": tender}, headers=HX
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert f'data-testid="error-{field}">{message}<' in page
    assert '<details class="adjust" open' in page
    assert not WalletEntry.objects.exists()
    assert balance(member) is None


def test_unnamed_member_limit_is_a_field_error_naming_the_largest_topup(
    clerk_client, member, bonus_tier, frozen
):
    response = clerk_client.post(
        wallet_url(member, "topup"), {"amount": "1000", "tender": "cash"}, headers=HX
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert (
        'data-testid="error-amount">未实名会员储值余额不能超过 1000.00 元：充值后余额 1020.00 元'
        "（含赠送 20.00 元）。请先登记身份证号，或本次最多充值 980.00 元<"
    ) in page
    assert 'value="1000"' in page  # what was typed is kept
    assert not WalletEntry.objects.exists()


def test_named_member_cap_is_a_field_error(clerk_client, store, frozen):
    named = make_member(store, name="赵敏", id_number=valid_id(), birthday=None)
    topup(named, "4900.00", store=store)
    response = clerk_client.post(
        wallet_url(named, "topup"), {"amount": "200", "tender": "cash"}, headers=HX
    )
    assert response.status_code == 422
    assert (
        "储值余额不能超过 5000.00 元：充值后余额 5100.00 元，本次最多充值 100.00 元"
        in response.content.decode()
    )
    assert balance(named) == (D("4900.00"), D("4900.00"), D("0.00"))


def test_topup_when_the_wallet_is_switched_off(clerk_client, member, frozen):
    WalletPolicy.objects.create(enabled=False)
    page = clerk_client.get(wallet_url(member)).content.decode()
    assert "未开通储值业务" in page
    assert 'data-testid="wallet-topup"' not in page
    response = clerk_client.post(wallet_url(member, "topup"), {"amount": "10", "tender": "cash"})
    assert response.status_code == 422
    assert "未开通储值业务" in response.content.decode()
    assert not WalletEntry.objects.exists()


@pytest.mark.parametrize("role", [Role.MARKETING, Role.AUDITOR])
def test_hq_roles_without_a_till_cannot_top_up_or_refund(member, frozen, role):
    client = signed_in(make_staff(role))
    page = client.get(wallet_url(member)).content.decode()
    assert 'data-testid="wallet-topup"' not in page
    assert 'data-testid="wallet-refund"' not in page
    response = client.post(wallet_url(member, "topup"), {"amount": "10", "tender": "cash"})
    assert response.status_code == 403
    response = client.post(wallet_url(member, "refund"), {"reason": "x", "tender": "cash"})
    assert response.status_code == 403
    assert not WalletEntry.objects.exists()


def test_hq_admin_without_a_store_cannot_top_up(hq_client, member, frozen):
    response = hq_client.post(wallet_url(member, "topup"), {"amount": "10", "tender": "cash"})
    assert response.status_code == 403
    assert not WalletEntry.objects.exists()


def test_cancelled_member_cannot_top_up(clerk_client, store, frozen):
    gone = make_member(store, name="李四")
    Member.objects.filter(pk=gone.pk).update(status="cancelled")
    assert 'data-testid="wallet-topup"' not in clerk_client.get(wallet_url(gone)).content.decode()
    response = clerk_client.post(wallet_url(gone, "topup"), {"amount": "10", "tender": "cash"})
    assert response.status_code == 403


def test_refund_pays_principal_forfeits_bonus_and_closes(
    clerk, clerk_client, store, member, bonus_tier, frozen
):
    topup(member, "500.00", store=store)
    response = clerk_client.post(
        wallet_url(member, "refund"), {"reason": "顾客搬家", "tender": "cash"}, headers=HX
    )
    assert response.status_code == 200
    assert response["HX-Location"] == f'{{"path": "/members/{member.pk}/"}}'
    assert balance(member) == (D("0.00"), D("0.00"), D("0.00"))
    refund = WalletEntry.objects.get(kind="refund")
    forfeit = WalletEntry.objects.get(kind="forfeit")
    assert (refund.amount, refund.reason, refund.actor_id, refund.store_id) == (
        D("-500.00"),
        "顾客搬家",
        clerk.pk,
        store.pk,
    )
    assert forfeit.amount == D("-20.00")
    page = clerk_client.get(f"/members/{member.pk}/").content.decode()
    assert "已为 王秀英 办理储值退款：退还 ¥500.00，作废 ¥20.00" in page


def test_refund_needs_a_reason_and_writes_nothing_without_one(clerk_client, store, member, frozen):
    topup(member, "80.00", store=store)
    response = clerk_client.post(
        wallet_url(member, "refund"), {"reason": " ", "tender": "cash"}, headers=HX
    )
    assert response.status_code == 422
    assert 'data-testid="error-reason">请填写退款原因<' in response.content.decode()
    assert balance(member) == (D("80.00"), D("80.00"), D("0.00"))
    assert not WalletEntry.objects.filter(kind__in=["refund", "forfeit"]).exists()


def test_refund_of_an_empty_wallet_or_when_not_refundable(clerk_client, store, member, frozen):
    response = clerk_client.post(wallet_url(member, "refund"), {"reason": "退卡", "tender": "cash"})
    assert response.status_code == 422
    assert "没有可退的储值余额" in response.content.decode()
    topup(member, "80.00", store=store)
    WalletPolicy.objects.create(refund_rule=RefundRule.NONE)
    page = clerk_client.get(wallet_url(member)).content.decode()
    assert 'data-testid="wallet-refund"' not in page
    response = clerk_client.post(wallet_url(member, "refund"), {"reason": "退卡", "tender": "cash"})
    assert response.status_code == 422
    assert "储值余额按规定不可退款" in response.content.decode()
    assert balance(member) == (D("80.00"), D("80.00"), D("0.00"))


def test_wallet_in_english(clerk_client, member, frozen):
    clerk_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    response = clerk_client.post(wallet_url(member, "topup"), {"amount": "", "tender": "cash"})
    page = response.content.decode()
    assert "Stored value" in page
    assert "Enter an amount greater than 0 (at most two decimals)" in page

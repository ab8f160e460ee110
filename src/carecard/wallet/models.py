"""Stored value (储值, S-1, S-2): an append-only ledger of money entries and a per-member account
whose balance is a cache of the entries, updated in the same transaction.

Money a member paid in (principal, 本金) and money the chain gave on top (bonus, 赠送金额) are
kept apart on every entry and on the account, because a cash refund returns principal only.

Invariant, for every member (``verify_wallets`` and the property tests prove it):
``account.balance == account.principal + account.bonus == sum(entry.amount)``,
``account.principal == sum(entry.principal)``, ``account.bonus == sum(entry.bonus)``, all ≥ 0.

SQLite keeps ``DecimalField`` values as binary floats, so the constraints that compare sums or
check whole cents allow a rounding error far below a cent instead of testing exact equality.
PostgreSQL stores ``numeric(12, 2)`` and the tolerance never matters there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Abs, Round
from django.db.models.lookups import LessThan
from django.utils.translation import gettext_lazy as _

from carecard.chain.models import Store
from carecard.members.models import Member

_EPSILON = Decimal("0.001")  # far below a cent, far above a float's error at these magnitudes


def _cents(field: str) -> LessThan:
    """``field`` is a whole number of cents (within the float tolerance on SQLite)."""
    return LessThan(Abs(F(field) * 100 - Round(F(field) * 100)), _EPSILON)


def _sum_is(total: str, *parts: str) -> LessThan:
    """``total == sum(parts)`` (within the float tolerance on SQLite)."""
    expression = F(total)
    for part in parts:
        expression = expression - F(part)
    return LessThan(Abs(expression), _EPSILON)


def _money(label: str, **kwargs: Any) -> models.DecimalField:
    return models.DecimalField(label, max_digits=12, decimal_places=2, **kwargs)


class RefundRule(models.TextChoices):
    """What a cash refund of stored value pays (``rules.refund_due``)."""

    NONE = "none", _("不可退款")
    REMAINING = "remaining", _("退还剩余本金，赠送金额作废")
    REMAINING_LESS_USED_BONUS = (
        "remaining_less_used_bonus",
        _("退还剩余本金，并扣除已使用的赠送金额"),
    )


class WalletPolicy(models.Model):
    """The chain's stored-value settings (one row), following the single-purpose prepaid card
    rules (单用途商业预付卡): a named card holds at most 5 000 CNY, an unregistered one 1 000."""

    enabled = models.BooleanField(
        _("开通储值"), default=True, help_text=_("关闭后不能再充值；已有余额仍可消费和退款")
    )
    balance_cap = _money(
        _("记名卡余额上限(元)"),
        default=Decimal("5000.00"),
        help_text=_("任何会员的储值余额（含赠送）充值后都不能超过此数"),
    )
    unnamed_cap = _money(
        _("未实名余额上限(元)"),
        default=Decimal("1000.00"),
        help_text=_("未登记身份证号的会员充值后的余额上限（需开启实名要求）"),
    )
    real_name_required = models.BooleanField(
        _("超过未实名上限须实名"),
        default=True,
        help_text=_("开启后，余额超过未实名上限的会员须先登记身份证号"),
    )
    bonus_refundable = models.BooleanField(
        _("赠送金额可退"), default=False, help_text=_("通常赠送金额不退现金，退款时作废")
    )
    refund_rule = models.CharField(
        _("退款规则"), max_length=30, choices=RefundRule.choices, default=RefundRule.REMAINING
    )
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("储值设置")
        verbose_name_plural = _("储值设置")
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_cap__gt=0, unnamed_cap__gte=0), name="wallet_policy_caps"
            ),
        ]

    def __str__(self) -> str:
        return str(_("储值设置"))


class TopupRule(models.Model):
    """A bonus tier (充值赠送): pay at least ``min_amount`` in one top-up, get ``bonus`` on top.
    Of the active tiers valid on the business date, the single one with the largest bonus that
    the payment reaches applies (``rules.best_tier``)."""

    name = models.CharField(_("名称"), max_length=100)
    min_amount = _money(_("单次充值满(元)"))
    bonus = _money(_("赠送(元)"))
    valid_from = models.DateField(_("生效日"), null=True, blank=True)
    valid_to = models.DateField(_("失效日"), null=True, blank=True, help_text=_("含当天"))
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("充值赠送规则")
        verbose_name_plural = _("充值赠送规则")
        ordering = ["min_amount", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount__gt=0, bonus__gt=0), name="wallet_topup_rule_positive"
            ),
            models.CheckConstraint(
                condition=_cents("min_amount") & _cents("bonus"), name="wallet_topup_rule_cents"
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_to__isnull=True)
                | Q(valid_to__gte=F("valid_from")),
                name="wallet_topup_rule_dates",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.min_amount} → +{self.bonus}"


class WalletAccount(models.Model):
    """A member's stored value: the cached balance and its principal and bonus parts. Locked
    for every change (locks.py)."""

    member = models.OneToOneField(
        Member, on_delete=models.PROTECT, primary_key=True, related_name="wallet_account"
    )
    balance = _money(_("储值余额"), default=Decimal("0.00"))
    principal = _money(_("本金余额"), default=Decimal("0.00"))
    bonus = _money(_("赠送余额"), default=Decimal("0.00"))
    lifetime_topup = _money(_("累计充值"), default=Decimal("0.00"))
    lifetime_bonus = _money(_("累计赠送"), default=Decimal("0.00"))
    lifetime_paid = _money(
        _("累计消费"), default=Decimal("0.00"), help_text=_("储值支付减去退货退回")
    )
    lifetime_refunded = _money(_("累计退款"), default=Decimal("0.00"))
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("储值账户")
        verbose_name_plural = _("储值账户")
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0, principal__gte=0, bonus__gte=0),
                name="wallet_account_nonnegative",
            ),
            models.CheckConstraint(
                condition=_sum_is("balance", "principal", "bonus"),
                name="wallet_account_balance_is_parts",
            ),
            models.CheckConstraint(
                condition=Q(
                    lifetime_topup__gte=0,
                    lifetime_bonus__gte=0,
                    lifetime_paid__gte=0,
                    lifetime_refunded__gte=0,
                ),
                name="wallet_account_lifetime_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.balance}"


class EntryKind(models.TextChoices):
    TOPUP = "topup", _("充值")
    BONUS = "bonus", _("充值赠送")
    PAY = "pay", _("储值消费")
    PAY_REVERSAL = "pay_reversal", _("退货退回")
    REFUND = "refund", _("退款")
    FORFEIT = "forfeit", _("退款作废")
    ADJUST = "adjust", _("人工调整")


class TopupTender(models.TextChoices):
    """How a top-up was paid (and how a refund is paid back). Stored value never buys stored
    value, and neither do insurance, points or coupons."""

    CASH = "cash", _("现金")
    WECHAT = "wechat", _("微信支付")
    ALIPAY = "alipay", _("支付宝")
    BANK_CARD = "bank_card", _("银行卡")


_CREDITS = [EntryKind.TOPUP, EntryKind.BONUS, EntryKind.PAY_REVERSAL]
_DEBITS = [EntryKind.PAY, EntryKind.REFUND, EntryKind.FORFEIT]


class WalletEntry(models.Model):
    """One change of a member's stored value. Never updated or deleted: a correction is a new
    entry pointing at the one it corrects (``corrects``). ``amount = principal + bonus``, the
    parts of one sign. Adjustments and refunds carry their actor and reason: the entry is their
    audit record, ``detail`` explains it (bonus rule, refund computation, balance before)."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="wallet_entries")
    kind = models.CharField(_("类型"), max_length=12, choices=EntryKind.choices)
    amount = _money(_("金额"))
    principal = _money(_("本金部分"))
    bonus = _money(_("赠送部分"))
    balance_after = _money(_("变动后余额"))
    at = models.DateTimeField(_("时间"))
    store = models.ForeignKey(
        Store, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    tender = models.CharField(_("支付方式"), max_length=12, choices=TopupTender.choices, blank=True)
    reference = models.CharField(
        _("业务单据"), max_length=64, blank=True, help_text=_("如 sale:123、充值流水号")
    )
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    detail = models.JSONField(_("说明"), default=dict, blank=True)
    corrects = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="corrections",
        db_index=False,
    )

    class Meta:
        verbose_name = _("储值流水")
        verbose_name_plural = _("储值流水")
        ordering = ["member_id", "-at", "-id"]
        indexes = [
            models.Index(fields=["member", "at"], name="wallet_entry_member_at"),
            models.Index(
                fields=["reference"], condition=~Q(reference=""), name="wallet_entry_reference"
            ),
            models.Index(
                fields=["corrects"], condition=Q(corrects__isnull=False), name="wallet_entry_fix"
            ),
            models.Index(fields=["at"], name="wallet_entry_at"),  # liability at a date (P-8)
        ]
        constraints = [
            # A top-up retried with the same reference is a replay, never a second credit.
            models.UniqueConstraint(
                fields=["member", "reference"],
                condition=Q(kind="topup") & ~Q(reference=""),
                name="wallet_entry_unique_topup_reference",
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="wallet_entry_nonzero"),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="wallet_entry_balance_nonnegative"
            ),
            models.CheckConstraint(
                condition=_cents("amount") & _cents("principal") & _cents("bonus"),
                name="wallet_entry_cents",
            ),
            models.CheckConstraint(
                condition=_sum_is("amount", "principal", "bonus"),
                name="wallet_entry_amount_is_parts",
            ),
            models.CheckConstraint(
                condition=Q(principal__gte=0, bonus__gte=0) | Q(principal__lte=0, bonus__lte=0),
                name="wallet_entry_parts_one_sign",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=_CREDITS, amount__gt=0)
                | Q(kind__in=_DEBITS, amount__lt=0)
                | Q(kind=EntryKind.ADJUST),
                name="wallet_entry_sign_by_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind=EntryKind.TOPUP, bonus=0) & ~Q(tender="")
                | Q(kind=EntryKind.BONUS, principal=0)
                | ~Q(kind__in=[EntryKind.TOPUP, EntryKind.BONUS]),
                name="wallet_entry_topup_parts",
            ),
            models.CheckConstraint(
                condition=~Q(kind=EntryKind.PAY_REVERSAL) | Q(corrects__isnull=False),
                name="wallet_entry_reversal_corrects",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=[EntryKind.ADJUST, EntryKind.REFUND])
                | (Q(actor__isnull=False) & ~Q(reason="")),
                name="wallet_entry_actor_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+}"

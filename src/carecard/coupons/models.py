"""Coupons (V-1..V-3): templates, issued coupons with unique codes, printed batches, 满即送 rules,
and an append-only trail of what happened to each coupon.

A coupon is single use: ``status`` goes issued → redeemed (or void / expired); a full return
may put a redeemed coupon back to issued while it is still valid, and the trail
(``CouponEvent``) keeps both the redemption and the restore. A template's terms (kind, value,
rate, scope …) are read at the till, so the console must not change them once coupons exist
(the admin makes them read-only).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from carecard.chain.models import Store
from carecard.coupons import rules
from carecard.members.models import Member


class CouponKind(models.TextChoices):
    AMOUNT_OFF = "amount_off", _("满减券/代金券")
    PERCENT_OFF = "percent_off", _("折扣券")
    GIFT = "gift", _("礼品券")
    SERVICE = "service", _("服务券")


class FundedBy(models.TextChoices):
    """Usual funders; ``funded_by`` also accepts a campaign code (活动编码)."""

    HQ = "hq", _("总部")
    STORE = "store", _("门店")
    VENDOR = "vendor", _("厂家")


class CouponTemplate(models.Model):
    """What a coupon is worth, where and when it can be used, and who pays for it (V-1).

    ``scope`` is a JSON object with the keys of ``loyalty.rules.Scope`` (``classes``,
    ``categories``, ``skus``, ``tags`` and their ``exclude_`` twins); empty = every item.
    Validity: fixed dates, days after issue, or both (the dates then bound the days).
    ``stores`` empty = every store.
    """

    name = models.CharField(_("名称"), max_length=100)
    description = models.CharField(_("使用说明"), max_length=300, blank=True)
    kind = models.CharField(_("类型"), max_length=20, choices=CouponKind.choices)
    value = models.DecimalField(
        _("面额"),
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("满减券、礼品券、服务券：抵扣金额上限"),
    )
    rate = models.DecimalField(
        _("折扣率"),
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("折扣券：0.90 = 9折"),
    )
    max_off = models.DecimalField(
        _("最高优惠"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    min_spend = models.DecimalField(
        _("使用门槛"), max_digits=10, decimal_places=2, default=Decimal("0.00")
    )
    scope = models.JSONField(_("适用范围"), default=dict, blank=True)
    applies_to_flagged = models.BooleanField(
        _("特价/限量/促销商品可用"), null=True, blank=True, help_text=_("空：按收银设置")
    )
    valid_from = models.DateField(_("开始日期"), null=True, blank=True)
    valid_until = models.DateField(_("截止日期"), null=True, blank=True)
    valid_days = models.PositiveSmallIntegerField(
        _("领取后有效天数"), null=True, blank=True, help_text=_("含领取当天")
    )
    stores = models.ManyToManyField(
        Store, blank=True, related_name="+", verbose_name=_("适用门店"), help_text=_("空：全部门店")
    )
    per_member_limit = models.PositiveSmallIntegerField(
        _("每人限领"), null=True, blank=True, help_text=_("空：不限")
    )
    stacking_group = models.CharField(
        _("叠加组"), max_length=32, default="default", help_text=_("同组的券每单只能用一张")
    )
    funded_by = models.CharField(
        _("费用承担"),
        max_length=32,
        default=FundedBy.HQ,
        help_text=_("hq 总部 / store 门店 / vendor 厂家，或活动编码"),
    )
    vendor_name = models.CharField(_("承担厂家"), max_length=100, blank=True)
    campaign_code = models.CharField(_("活动编码"), max_length=32, blank=True)
    points_funded = models.BooleanField(
        _("积分兑换券"), default=False, help_text=_("用积分换来的券：抵扣部分不再积分")
    )
    members_only = models.BooleanField(_("仅限会员"), default=True)
    active = models.BooleanField(_("启用"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("券模板")
        verbose_name_plural = _("券模板")
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        kind="percent_off",
                        rate__isnull=False,
                        rate__gte=0,
                        rate__lt=1,
                        value__isnull=True,
                    )
                    | (
                        ~Q(kind="percent_off")
                        & Q(
                            value__isnull=False,
                            value__gt=0,
                            rate__isnull=True,
                            max_off__isnull=True,
                        )
                    )
                ),
                name="coupon_template_kind_terms",
            ),
            models.CheckConstraint(
                condition=Q(min_spend__gte=0), name="coupon_template_min_spend_nonnegative"
            ),
            models.CheckConstraint(
                condition=Q(max_off__isnull=True) | Q(max_off__gt=0),
                name="coupon_template_max_off_positive",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=False)
                | Q(valid_days__isnull=False, valid_days__gt=0),
                name="coupon_template_has_validity",
            ),
            models.CheckConstraint(
                condition=Q(valid_days__isnull=True) | Q(valid_days__gt=0),
                name="coupon_template_valid_days_positive",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_from__lte=F("valid_until")),
                name="coupon_template_dates_ordered",
            ),
            models.CheckConstraint(
                condition=Q(per_member_limit__isnull=True) | Q(per_member_limit__gt=0),
                name="coupon_template_limit_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def terms(self) -> rules.TemplateTerms:
        """The template's terms as the pure module's value object."""
        return rules.TemplateTerms(
            id=self.pk,
            name=self.name,
            kind=self.kind,
            value=self.value,
            rate=self.rate,
            max_off=self.max_off,
            min_spend=Decimal(self.min_spend if self.min_spend is not None else -1),
            scope=self.scope,
            stacking_group=self.stacking_group,
            funded_by=self.funded_by,
            points_funded=self.points_funded,
            members_only=self.members_only,
            applies_to_flagged=self.applies_to_flagged,
        )

    def clean(self) -> None:
        errors = rules.terms_errors(
            self.terms(),
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            valid_days=self.valid_days,
            per_member_limit=self.per_member_limit,
        )
        if errors:
            by_field: dict[str, list[str]] = {}
            for e in errors:
                name = e.field.split(".")[0]
                by_field.setdefault(name, []).append(str(e.message))
            raise ValidationError(by_field)


class CouponStatus(models.TextChoices):
    ISSUED = "issued", _("未使用")
    REDEEMED = "redeemed", _("已使用")
    VOID = "void", _("已作废")
    EXPIRED = "expired", _("已过期")


class CouponSource(models.TextChoices):
    MANUAL = "manual", _("手工发放")
    BULK = "bulk", _("批量发放")
    POINTS_REDEMPTION = "points_redemption", _("积分兑换")
    PURCHASE = "purchase", _("消费送券")
    PRINTED_BATCH = "printed_batch", _("纸质券批次")
    CAMPAIGN = "campaign", _("营销活动")
    AUTOMATION = "automation", _("自动营销")
    REFERRAL = "referral", _("推荐有礼")


class CouponBatch(models.Model):
    """A batch of printed codes (纸质券): ``count`` coupons without an owner until claimed."""

    template = models.ForeignKey(
        CouponTemplate, on_delete=models.PROTECT, related_name="batches", verbose_name=_("券模板")
    )
    count = models.PositiveIntegerField(_("张数"))
    prefix = models.CharField(_("券码前缀"), max_length=8, blank=True)
    note = models.CharField(_("备注"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(_("创建时间"))

    class Meta:
        verbose_name = _("纸质券批次")
        verbose_name_plural = _("纸质券批次")
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(count__gt=0), name="coupon_batch_count_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.template} × {self.count}"


class Coupon(models.Model):
    """One issued coupon with its unique code: who holds it, when it is valid, where it came
    from (``source``, ``source_reference``, ``campaign_code`` for cost attribution) and, once
    used, where, when, by which sale and for how much."""

    template = models.ForeignKey(
        CouponTemplate, on_delete=models.PROTECT, related_name="coupons", verbose_name=_("券模板")
    )
    member = models.ForeignKey(
        Member,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="coupons",
        db_index=False,
        verbose_name=_("会员"),
    )
    code = models.CharField(_("券码"), max_length=32)
    status = models.CharField(
        _("状态"), max_length=10, choices=CouponStatus.choices, default=CouponStatus.ISSUED
    )
    issued_at = models.DateTimeField(_("发放时间"))
    valid_from = models.DateField(_("生效日"))
    valid_until = models.DateField(_("到期日"))
    source = models.CharField(_("来源"), max_length=20, choices=CouponSource.choices)
    source_reference = models.CharField(
        _("来源单据"), max_length=64, blank=True, help_text=_("如 points_entry:12、sale:5")
    )
    campaign_code = models.CharField(_("活动编码"), max_length=32, blank=True)
    batch = models.ForeignKey(
        CouponBatch,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="coupons",
        verbose_name=_("批次"),
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    issued_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("发放门店"),
    )
    claimed_at = models.DateTimeField(_("领取时间"), null=True, blank=True)
    redeemed_at = models.DateTimeField(_("使用时间"), null=True, blank=True)
    redeemed_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("使用门店"),
    )
    redeemed_reference = models.CharField(_("使用单据"), max_length=64, blank=True)
    redeemed_amount = models.DecimalField(
        _("抵扣金额"), max_digits=10, decimal_places=2, null=True, blank=True
    )

    class Meta:
        verbose_name = _("优惠券")
        verbose_name_plural = _("优惠券")
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="coupon_unique_code"),
            models.CheckConstraint(
                condition=(
                    Q(
                        status="redeemed",
                        redeemed_at__isnull=False,
                        redeemed_amount__isnull=False,
                        redeemed_amount__gte=0,
                    )
                    | (
                        ~Q(status="redeemed")
                        & Q(redeemed_at__isnull=True, redeemed_amount__isnull=True)
                    )
                ),
                name="coupon_redeemed_fields",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__lte=F("valid_until")), name="coupon_dates_ordered"
            ),
            models.CheckConstraint(
                condition=Q(member__isnull=False) | Q(source="printed_batch"),
                name="coupon_owner_or_printed",
            ),
        ]
        indexes = [
            # A member's coupons (member pages, per-member limits).
            models.Index(fields=["member", "template", "status"], name="coupon_member_template"),
            models.Index(fields=["member", "status", "valid_until"], name="coupon_member_status"),
            # Idempotent issue by purchase / campaign reference.
            models.Index(
                fields=["source_reference", "template"],
                condition=~Q(source_reference=""),
                name="coupon_source_ref",
            ),
            # A return finds the coupons its sale used.
            models.Index(
                fields=["redeemed_reference"],
                condition=~Q(redeemed_reference=""),
                name="coupon_redeemed_ref",
            ),
            # Cost attribution by redemption date.
            models.Index(
                fields=["redeemed_at"], condition=Q(status="redeemed"), name="coupon_redeemed_at"
            ),
            # The expiry job.
            models.Index(
                fields=["valid_until"], condition=Q(status="issued"), name="coupon_issued_due"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class CouponQuota(models.Model):
    """The lock row for one member's per-member limit on one template.

    Locking the member's existing coupons cannot stop two concurrent first issues (there is
    nothing to lock yet), so issue and claim upsert this row on its unique constraint and
    lock it (``locks.lock_quotas``) before counting the member's coupons of the template.
    Templates with a ``per_member_limit`` use it, and 消费送券 (so two replays of one receipt
    cannot both issue).
    """

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    template = models.ForeignKey(
        CouponTemplate, on_delete=models.CASCADE, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("限领锁")
        verbose_name_plural = _("限领锁")
        constraints = [
            models.UniqueConstraint(fields=["template", "member"], name="coupon_quota_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template_id}/{self.member_id}"


class EventKind(models.TextChoices):
    CLAIMED = "claimed", _("领取")
    REDEEMED = "redeemed", _("使用")
    RESTORED = "restored", _("退货返还")
    VOIDED = "voided", _("作废")
    EXPIRED = "expired", _("过期")


class CouponEvent(models.Model):
    """Something that happened to a coupon after it was issued (the coupon row is the issue
    record). Append-only: never updated or deleted. A restore keeps the redemption it undid in
    ``detail``, so the trail survives the coupon row being reset."""

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="events")
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(_("类型"), max_length=10, choices=EventKind.choices)
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
    reference = models.CharField(_("业务单据"), max_length=64, blank=True)
    amount = models.DecimalField(_("金额"), max_digits=10, decimal_places=2, null=True, blank=True)
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    detail = models.JSONField(_("详情"), default=dict, blank=True)

    class Meta:
        verbose_name = _("券记录")
        verbose_name_plural = _("券记录")
        ordering = ["coupon_id", "at", "pk"]
        indexes = [
            models.Index(
                fields=["member", "at"],
                condition=Q(member__isnull=False),
                name="coupon_event_member",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.coupon_id} {self.kind}"


class PurchaseRule(models.Model):
    """消费送券 / 满即送: a receipt of at least ``min_amount`` earns ``quantity`` coupons of
    ``template`` (``repeat``: for every full ``min_amount``, 每满100送1张), at most
    ``max_per_receipt``. ``stores`` empty = every store."""

    name = models.CharField(_("名称"), max_length=100)
    template = models.ForeignKey(
        CouponTemplate,
        on_delete=models.PROTECT,
        related_name="purchase_rules",
        verbose_name=_("送出的券"),
    )
    min_amount = models.DecimalField(_("消费满"), max_digits=10, decimal_places=2)
    quantity = models.PositiveSmallIntegerField(_("送券张数"), default=1)
    repeat = models.BooleanField(_("每满送"), default=False)
    max_per_receipt = models.PositiveSmallIntegerField(
        _("每单最多"), null=True, blank=True, help_text=_("空：不限")
    )
    stores = models.ManyToManyField(
        Store, blank=True, related_name="+", verbose_name=_("适用门店"), help_text=_("空：全部门店")
    )
    starts_on = models.DateField(_("开始日期"), null=True, blank=True)
    ends_on = models.DateField(_("结束日期"), null=True, blank=True)
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("消费送券规则")
        verbose_name_plural = _("消费送券规则")
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount__gt=0), name="coupon_purchase_rule_min_positive"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="coupon_purchase_rule_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(starts_on__isnull=True)
                | Q(ends_on__isnull=True)
                | Q(starts_on__lte=F("ends_on")),
                name="coupon_purchase_rule_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name

"""Sales at the counter (C-1..C-6): the sale, its lines, one discount row per line and cause,
and the tenders; a return is a sale of kind ``return`` pointing at the original.

Money is Decimal with 2 places. Every table carries ``member_id`` (null for walk-ins) so it can
later be distributed by member.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from carecard.catalog.models import Product
from carecard.chain.models import PosTerminal, Store
from carecard.members.models import Member

ZERO = Decimal("0.00")


class CheckoutSettings(models.Model):
    """How the counter prices and takes returns (one row; HQ edits it)."""

    stacking = models.CharField(
        _("折扣叠加"),
        max_length=20,
        choices=[("best_single", _("取单项最优折扣")), ("multiply", _("折上折(相乘)"))],
        default="best_single",
    )
    coupon_stacking = models.CharField(
        _("用券"),
        max_length=20,
        choices=[("one_per_group", _("每个叠加组一张")), ("single", _("每单一张"))],
        default="one_per_group",
    )
    coupons_on_flagged = models.BooleanField(_("特价/限量/促销商品可用券"), default=False)
    return_days = models.PositiveSmallIntegerField(_("退货期限(天)"), default=30)
    points_per_yuan = models.PositiveIntegerField(
        _("积分抵现：多少分抵1元"), default=100, help_text=_("0 表示不允许积分抵现")
    )

    class Meta:
        verbose_name = _("收银设置")
        verbose_name_plural = _("收银设置")

    def __str__(self) -> str:
        return str(_("收银设置"))


class SaleKind(models.TextChoices):
    SALE = "sale", _("销售")
    RETURN = "return", _("退货")


class Sale(models.Model):
    """A committed sale or return: the receipt (C-4)."""

    receipt_no = models.CharField(_("小票号"), max_length=40)
    kind = models.CharField(_("类型"), max_length=10, choices=SaleKind.choices, default="sale")
    # No single-column indexes: sale_member_at and sale_store_day / sale_store_receipt lead
    # with these columns, and every index is one more write per sale.
    member = models.ForeignKey(
        Member,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sales",
        db_index=False,
    )
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="sales", db_index=False)
    terminal = models.ForeignKey(
        PosTerminal,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    original_sale = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="returns",
        db_index=False,
    )
    at = models.DateTimeField(_("交易时间"))
    business_date = models.DateField(_("营业日"))
    recorded_at = models.DateTimeField(_("上传时间"), auto_now_add=True)
    offline = models.BooleanField(_("离线补传"), default=False)
    original_total = models.DecimalField(_("原价合计"), max_digits=12, decimal_places=2)
    discount_total = models.DecimalField(_("优惠合计"), max_digits=12, decimal_places=2)
    net_total = models.DecimalField(_("应付"), max_digits=12, decimal_places=2)
    points_earned = models.IntegerField(_("获得积分"), default=0)
    points_spent = models.IntegerField(_("使用积分"), default=0)
    points_balance = models.IntegerField(_("积分余额"), null=True, blank=True)
    recovered_amount = models.DecimalField(
        _("扣回已用积分价值"), max_digits=12, decimal_places=2, default=ZERO
    )
    explanation = models.JSONField(_("积分说明"), default=dict, blank=True)

    class Meta:
        verbose_name = _("销售单")
        verbose_name_plural = _("销售单")
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["store", "receipt_no"], name="sale_store_receipt"),
            models.CheckConstraint(
                condition=Q(kind="sale", original_sale__isnull=True)
                | Q(kind="return", original_sale__isnull=False),
                name="sale_return_has_original",
            ),
        ]
        indexes = [
            models.Index(
                fields=["member", "at"], condition=Q(member__isnull=False), name="sale_member_at"
            ),
            models.Index(fields=["store", "business_date"], name="sale_store_day"),
            models.Index(
                fields=["original_sale"],
                condition=Q(original_sale__isnull=False),
                name="sale_original",
            ),
        ]

    def __str__(self) -> str:
        return self.receipt_no


class SaleLine(models.Model):
    """One line of a receipt: original, discount and net (C-4); a return line points at the
    line it returns."""

    # Indexed by sale_line_no (sale, line_no).
    sale = models.ForeignKey(Sale, on_delete=models.CASCADE, related_name="lines", db_index=False)
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    line_no = models.PositiveSmallIntegerField(_("行号"))
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(_("商品编码"), max_length=64)
    name = models.CharField(_("品名"), max_length=200)
    quantity = models.PositiveIntegerField(_("数量"))
    unit_price = models.DecimalField(_("单价"), max_digits=10, decimal_places=2)
    original = models.DecimalField(_("原价金额"), max_digits=12, decimal_places=2)
    discount = models.DecimalField(_("优惠"), max_digits=12, decimal_places=2)
    net = models.DecimalField(_("实收"), max_digits=12, decimal_places=2)
    points = models.IntegerField(_("积分"), default=0)
    returned_quantity = models.PositiveIntegerField(_("已退数量"), default=0)
    returns_line = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="returned_by",
        db_index=False,
    )
    explanation = models.JSONField(_("积分说明"), default=dict, blank=True)

    class Meta:
        verbose_name = _("销售明细")
        verbose_name_plural = _("销售明细")
        ordering = ["sale_id", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["sale", "line_no"], name="sale_line_no"),
            models.CheckConstraint(
                condition=Q(returned_quantity__lte=models.F("quantity")),
                name="sale_line_returned_le_sold",
            ),
            models.CheckConstraint(condition=Q(net__gte=0), name="sale_line_net_nonnegative"),
        ]
        indexes = [
            # A return finds the earlier returns of the same line.
            models.Index(
                fields=["returns_line"],
                condition=Q(returns_line__isnull=False),
                name="sale_line_returns",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} × {self.quantity}"


class SaleDiscount(models.Model):
    """One discount on one line: kind, rule or coupon, amount, reason, who funds it."""

    line = models.ForeignKey(SaleLine, on_delete=models.CASCADE, related_name="discounts")
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(_("类型"), max_length=20)
    rule_ref = models.CharField(_("规则"), max_length=40, blank=True)
    coupon_code = models.CharField(_("券码"), max_length=40, blank=True)
    amount = models.DecimalField(_("金额"), max_digits=12, decimal_places=2)
    reason = models.CharField(_("原因"), max_length=200)
    funded_by = models.CharField(_("费用承担"), max_length=32)
    points_funded = models.BooleanField(_("积分兑换券"), default=False)

    class Meta:
        verbose_name = _("优惠明细")
        verbose_name_plural = _("优惠明细")

    def __str__(self) -> str:
        return f"{self.reason} {self.amount}"


class TenderKind(models.TextChoices):
    CASH = "cash", _("现金")
    BANK_CARD = "bank_card", _("银行卡")
    WECHAT = "wechat", _("微信支付")
    ALIPAY = "alipay", _("支付宝")
    INSURANCE_POOL = "insurance_pool", _("医保统筹")
    INSURANCE_PERSONAL = "insurance_personal", _("医保个人账户")
    STORED_VALUE = "stored_value", _("储值")
    COUPON = "coupon", _("纸质代金券")
    POINTS = "points", _("积分抵现")


class SaleTender(models.Model):
    """How a receipt was paid (C-4a)."""

    sale = models.ForeignKey(Sale, on_delete=models.CASCADE, related_name="tenders")
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(_("支付方式"), max_length=20, choices=TenderKind.choices)
    amount = models.DecimalField(_("金额"), max_digits=12, decimal_places=2)
    points = models.IntegerField(_("积分"), default=0)
    reference = models.CharField(_("流水号"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("支付明细")
        verbose_name_plural = _("支付明细")

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class MemberStats(models.Model):
    """A member's purchase aggregates (C-2 item 8), kept current inside each commit: the base
    of later segments. ``months`` holds per-month visits and spend (``{"2026-11": [3, "120.50"]}``)
    for the rolling 12-month figures."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, primary_key=True, related_name="stats"
    )
    first_purchase_at = models.DateTimeField(_("首次消费"), null=True, blank=True)
    last_purchase_at = models.DateTimeField(_("最近消费"), null=True, blank=True)
    last_store = models.ForeignKey(
        Store, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    visits = models.PositiveIntegerField(_("累计消费次数"), default=0)
    spend = models.DecimalField(_("累计消费金额"), max_digits=14, decimal_places=2, default=ZERO)
    visits_12m = models.PositiveIntegerField(_("近12个月消费次数"), default=0)
    spend_12m = models.DecimalField(
        _("近12个月消费金额"), max_digits=14, decimal_places=2, default=ZERO
    )
    months = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("会员消费统计")
        verbose_name_plural = _("会员消费统计")

    def __str__(self) -> str:
        return f"{self.member_id}: {self.visits}"


class SpendBenefit(models.Model):
    """A yearly-spend benefit (T-3): once a member's spend in a calendar year reaches
    ``threshold``, the commit that crossed it issues ``coupon_template`` (e.g. a free health
    check voucher) — once per member and year."""

    name = models.CharField(_("名称"), max_length=100)
    threshold = models.DecimalField(_("年消费门槛"), max_digits=12, decimal_places=2)
    coupon_template = models.ForeignKey(
        "coupons.CouponTemplate", on_delete=models.PROTECT, related_name="+", verbose_name=_("赠券")
    )
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("年度消费权益")
        verbose_name_plural = _("年度消费权益")

    def __str__(self) -> str:
        return self.name

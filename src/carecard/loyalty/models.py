"""Points (P-1..P-8): an append-only ledger of entries, lots that carry expiry, and a per-member
account whose balance is a cache of the entries, updated in the same transaction.

Invariant, for every member (``carecard check`` and the property tests prove it):
``account.balance == sum(entry.points) == sum(lot.remaining) - account.debt``.
``debt`` is what a return clawed back beyond the member's open lots; later earnings repay it
first, so a member in debt shows a negative balance until then.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from carecard.chain.models import Store
from carecard.members.models import Member


class ExpiryPolicy(models.TextChoices):
    NONE = "none", _("永不过期")
    YEAR_END = "year_end", _("当年12月31日过期")
    ROLLING_MONTHS = "rolling_months", _("获得后 N 个月过期")
    NEXT_YEAR_END = "next_year_end", _("次年12月31日过期")


class ShortfallPolicy(models.TextChoices):
    """What a return does when the points it reverses were already spent (C-6)."""

    DEBT = "debt", _("积分可为负，以后获得的积分先抵扣")
    RECOVER_VALUE = "recover_value", _("按积分价值从退款中扣回")


class PointsProgram(models.Model):
    """The chain's points settings (one row). Earning rules proper live in rule tables."""

    expiry_policy = models.CharField(
        _("过期规则"), max_length=20, choices=ExpiryPolicy.choices, default=ExpiryPolicy.NONE
    )
    expiry_months = models.PositiveSmallIntegerField(_("滚动过期月数"), default=24)
    pending_days = models.PositiveSmallIntegerField(
        _("待生效天数"), default=0, help_text=_("销售后多少天积分才可使用（退货期）")
    )
    reminder_days = models.PositiveSmallIntegerField(_("过期提醒提前天数"), default=30)
    shortfall_policy = models.CharField(
        _("退货时积分不足"),
        max_length=20,
        choices=ShortfallPolicy.choices,
        default=ShortfallPolicy.DEBT,
    )
    point_value = models.DecimalField(
        _("每分价值(元)"),
        max_digits=8,
        decimal_places=4,
        default="0.0100",
        help_text=_("扣回已用积分时按此价值折算，也用于负债报表"),
    )
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("积分方案")
        verbose_name_plural = _("积分方案")

    def __str__(self) -> str:
        return str(_("积分方案"))


class PointsAccount(models.Model):
    """A member's points: the cached balance and debt. Locked for every change (locks.py)."""

    member = models.OneToOneField(
        Member, on_delete=models.PROTECT, primary_key=True, related_name="points_account"
    )
    balance = models.IntegerField(_("积分余额"), default=0)
    debt = models.PositiveIntegerField(_("待抵扣积分"), default=0)
    lifetime_earned = models.PositiveIntegerField(_("累计获得"), default=0)
    lifetime_spent = models.PositiveIntegerField(_("累计使用"), default=0)
    lifetime_expired = models.PositiveIntegerField(_("累计过期"), default=0)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("积分账户")
        verbose_name_plural = _("积分账户")

    def __str__(self) -> str:
        return f"{self.member_id}: {self.balance}"


class EntryKind(models.TextChoices):
    EARN = "earn", _("消费积分")
    BONUS = "bonus", _("奖励积分")
    REDEEM = "redeem", _("积分兑换")
    PAY = "pay", _("积分抵现")
    EXPIRE = "expire", _("积分过期")
    ADJUST = "adjust", _("人工调整")
    REVERSE = "reverse", _("退货扣回")
    RESTORE = "restore", _("退货返还")
    IMPORT = "import", _("期初导入")


class PointsEntry(models.Model):
    """One change of a member's points. Never updated or deleted: a correction is a new entry
    pointing at the one it corrects (``corrects``)."""

    # Indexed by points_entry_member_at (member, at).
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="points_entries", db_index=False
    )
    kind = models.CharField(_("类型"), max_length=10, choices=EntryKind.choices)
    points = models.IntegerField(_("积分"))
    balance_after = models.IntegerField(_("变动后余额"))
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
    reference = models.CharField(
        _("业务单据"), max_length=64, blank=True, help_text=_("如 sale:123、reward:9")
    )
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    explanation = models.JSONField(_("积分说明"), default=dict, blank=True)
    corrects = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="corrections",
        db_index=False,
    )

    class Meta:
        verbose_name = _("积分流水")
        verbose_name_plural = _("积分流水")
        ordering = ["member_id", "-at", "-id"]
        indexes = [
            models.Index(fields=["member", "at"], name="points_entry_member_at"),
            models.Index(
                fields=["reference"], condition=~Q(reference=""), name="points_entry_reference"
            ),
            models.Index(
                fields=["corrects"], condition=Q(corrects__isnull=False), name="points_entry_fix"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(points=0), name="points_entry_nonzero"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"


class PointsLot(models.Model):
    """Points earned together, with one expiry date. Spending takes the oldest expiry first."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="points_lots")
    entry = models.OneToOneField(
        PointsEntry, on_delete=models.PROTECT, related_name="lot", verbose_name=_("来源流水")
    )
    earned_at = models.DateTimeField(_("获得时间"))
    available_at = models.DateTimeField(_("可用时间"))
    expires_on = models.DateField(_("过期日"), null=True, blank=True)
    original = models.PositiveIntegerField(_("原始积分"))
    remaining = models.PositiveIntegerField(_("剩余积分"))

    class Meta:
        verbose_name = _("积分批次")
        verbose_name_plural = _("积分批次")
        indexes = [
            # The open lots of a member in spending order; the expiry job finds due lots.
            models.Index(
                fields=["member", "expires_on", "id"],
                condition=Q(remaining__gt=0),
                name="points_lot_open",
            ),
            models.Index(
                fields=["expires_on"],
                condition=Q(remaining__gt=0, expires_on__isnull=False),
                name="points_lot_due",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__lte=F("original")), name="points_lot_remaining_le_original"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.remaining}/{self.original}"


class PointsLotUse(models.Model):
    """Which lots an outgoing entry took its points from (a return gives them back there)."""

    entry = models.ForeignKey(PointsEntry, on_delete=models.PROTECT, related_name="lot_uses")
    lot = models.ForeignKey(PointsLot, on_delete=models.PROTECT, related_name="uses")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+", db_index=False)
    points = models.IntegerField(_("积分"), help_text=_("取出为正，退回为负"))

    class Meta:
        verbose_name = _("积分批次使用")
        verbose_name_plural = _("积分批次使用")
        constraints = [
            models.CheckConstraint(condition=~Q(points=0), name="points_lot_use_nonzero"),
        ]

    def __str__(self) -> str:
        return f"{self.lot_id}: {self.points:+d}"


class ScheduleKind(models.TextChoices):
    EVERY_DAY = "every_day", _("每天")
    LUNAR_DAYS = "lunar_days", _("农历每月某日")
    SOLAR_DAYS = "solar_days", _("公历每月某日")
    WEEKDAYS = "weekdays", _("每周某天")
    FIXED_DATES = "fixed_dates", _("固定日期")
    BIRTHDAY_DAY = "birthday_day", _("生日当天")
    BIRTHDAY_MONTH = "birthday_month", _("生日当月")


class PricingRuleKind(models.TextChoices):
    MEMBER_PRICE = "member_price", _("会员价")
    BASE = "base", _("会员基础折扣")
    MEMBER_DAY = "member_day", _("会员日")
    BIRTHDAY = "birthday", _("生日折扣")
    TIER = "tier", _("等级折扣")


class PricingRule(models.Model):
    """An HQ member-pricing rule (C-3), the stored form of ``checkout.engine.DiscountRule``.

    ``scope`` is a JSON object with the keys of ``loyalty.rules.Scope`` (classes, categories,
    skus, tags and their ``exclude_`` twins). ``regions`` limits the rule to stores of those
    regions (empty: every store).
    """

    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=20, choices=PricingRuleKind.choices)
    rate = models.DecimalField(
        _("折扣率"), max_digits=5, decimal_places=4, null=True, blank=True, help_text="0.95 = 9.5折"
    )
    schedule_kind = models.CharField(
        _("日程"), max_length=20, choices=ScheduleKind.choices, default=ScheduleKind.EVERY_DAY
    )
    schedule_days = models.JSONField(_("日期"), default=list, blank=True)
    schedule_dates = models.JSONField(_("固定日期 [[月,日]]"), default=list, blank=True)
    effective_from = models.DateField(_("生效日"), null=True, blank=True)
    effective_to = models.DateField(_("失效日"), null=True, blank=True)
    tiers = models.JSONField(_("适用等级"), default=list, blank=True)
    scope = models.JSONField(_("适用范围"), default=dict, blank=True)
    regions = models.JSONField(_("适用区域"), default=list, blank=True)
    applies_to_flagged = models.BooleanField(_("特价/限量/促销商品也适用"), default=False)
    funded_by = models.CharField(_("费用承担"), max_length=32, default="hq")
    legal_basis = models.CharField(_("法规依据"), max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(_("顺序"), default=0)
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("会员价格规则")
        verbose_name_plural = _("会员价格规则")
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name


class EarningPlan(models.Model):
    """How points are earned (P-1), the stored form of ``loyalty.earning.EarningRule``. The
    active plan with the lowest position applies."""

    name = models.CharField(_("名称"), max_length=100)
    amount_per_point = models.DecimalField(
        _("每积1分所需金额"), max_digits=8, decimal_places=2, default="1.00"
    )
    rounding = models.CharField(
        _("取整"),
        max_length=10,
        choices=[("floor", _("向下取整")), ("half_up", _("四舍五入"))],
        default="floor",
    )
    scope = models.JSONField(
        _("积分范围"),
        default=dict,
        blank=True,
        help_text=_("空：除特价/限量/促销外全部商品"),
    )
    sku_multipliers = models.JSONField(_("商品倍数"), default=dict, blank=True)
    category_multipliers = models.JSONField(_("分类倍数"), default=dict, blank=True)
    tier_multipliers = models.JSONField(_("等级倍数"), default=dict, blank=True)
    day_multipliers = models.JSONField(
        _("会员日倍数"),
        default=list,
        blank=True,
        help_text=(
            '[{"name": "会员日", "schedule_kind": "lunar_days", "days": [8], "multiplier": "2"}]'
        ),
    )
    receipt_bonus = models.PositiveIntegerField(_("每单奖励积分"), default=0)
    min_amount = models.DecimalField(_("最低积分金额"), max_digits=10, decimal_places=2, default=0)
    non_earning_tenders = models.JSONField(_("不积分的支付方式"), default=list, blank=True)
    position = models.PositiveSmallIntegerField(_("顺序"), default=0)
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("积分规则")
        verbose_name_plural = _("积分规则")
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name


class TierBasis(models.TextChoices):
    POINTS = "points", _("累计获得积分")
    SPEND = "spend", _("消费金额")
    VISITS = "visits", _("消费次数")


class Tier(models.Model):
    """A member tier (T-1..T-3). Rank 0 is the entry tier every member starts in. A member
    moves up as soon as the measure reaches ``threshold`` (over the lifetime, or the last
    ``window_months``); moving down happens only at the periodic review, after a grace period.
    A paid tier (``fee``) is bought for ``paid_months`` instead. Discounts for a tier are
    pricing rules of kind ``tier``; points multipliers live in the earning plan."""

    code = models.CharField(_("编码"), max_length=20, unique=True)
    name = models.CharField(_("名称"), max_length=50)
    rank = models.PositiveSmallIntegerField(_("级别"), unique=True)
    basis = models.CharField(
        _("升级依据"), max_length=10, choices=TierBasis.choices, default=TierBasis.POINTS
    )
    threshold = models.DecimalField(_("门槛"), max_digits=12, decimal_places=2, default=0)
    window_months = models.PositiveSmallIntegerField(
        _("统计月数"), null=True, blank=True, help_text=_("空：终身累计")
    )
    fee = models.DecimalField(
        _("付费会员费"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    paid_months = models.PositiveSmallIntegerField(_("付费有效月数"), default=12)
    benefits = models.CharField(_("权益说明"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("会员等级")
        verbose_name_plural = _("会员等级")
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class MemberTier(models.Model):
    """A member's current tier. ``paid_until`` is set for a bought tier; ``grace_until`` when
    a review found the member below the tier's threshold."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, primary_key=True, related_name="tier_state"
    )
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    since = models.DateTimeField(_("获得时间"))
    paid_until = models.DateField(_("付费有效期至"), null=True, blank=True)
    grace_until = models.DateField(_("保级截止"), null=True, blank=True)

    class Meta:
        verbose_name = _("会员当前等级")
        verbose_name_plural = _("会员当前等级")
        indexes = [models.Index(fields=["tier"], name="member_tier_tier")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.tier_id}"


class TierChange(models.Model):
    """Every tier change, append-only: the member's tier history."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(_("时间"))
    reason = models.CharField(_("原因"), max_length=100)

    class Meta:
        verbose_name = _("等级变动")
        verbose_name_plural = _("等级变动")
        ordering = ["member_id", "-at"]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} → {self.to_tier_id}"


class RewardKind(models.TextChoices):
    COUPON = "coupon", _("兑换优惠券")
    GIFT = "gift", _("兑换礼品")
    SERVICE = "service", _("兑换服务券")


class Reward(models.Model):
    """An item of the redemption catalogue (P-4): points for a coupon, a gift from stock or a
    service voucher. ``months`` limits redemption to those months of the year (感恩回馈月);
    ``store_ids`` to those stores (empty: every store)."""

    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=10, choices=RewardKind.choices)
    points = models.PositiveIntegerField(_("所需积分"))
    coupon_template = models.ForeignKey(
        "coupons.CouponTemplate",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("兑换的券"),
    )
    stock = models.PositiveIntegerField(_("库存"), null=True, blank=True, help_text=_("空：不限"))
    months = models.JSONField(_("可兑换月份"), default=list, blank=True)
    store_ids = models.JSONField(_("可兑换门店"), default=list, blank=True)
    active = models.BooleanField(_("启用"), default=True)
    position = models.PositiveSmallIntegerField(_("顺序"), default=0)

    class Meta:
        verbose_name = _("积分兑换项目")
        verbose_name_plural = _("积分兑换项目")
        ordering = ["position", "points"]
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="reward_points_positive"),
            models.CheckConstraint(
                condition=Q(kind="gift") | Q(coupon_template__isnull=False),
                name="reward_coupon_needs_template",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RewardRedemption(models.Model):
    """One redemption: the points entry that paid and what the member got."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="redemptions")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    entry = models.OneToOneField(PointsEntry, on_delete=models.PROTECT, related_name="redemption")
    coupon = models.ForeignKey(
        "coupons.Coupon", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    store = models.ForeignKey(
        Store, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    at = models.DateTimeField(_("时间"))

    class Meta:
        verbose_name = _("积分兑换记录")
        verbose_name_plural = _("积分兑换记录")
        indexes = [models.Index(fields=["member", "at"], name="redemption_member_at")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.reward_id}"


class PointsReminder(models.Model):
    """A queued "your points expire soon" notice (P-3), one per member and expiry date. The
    messaging channels (SMS, WeChat) send and stamp it; it is a service notice about the
    member's own account, not marketing."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="points_reminders")
    expires_on = models.DateField(_("过期日"))
    points = models.PositiveIntegerField(_("将过期积分"))
    queued_at = models.DateTimeField(_("排队时间"))
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("积分过期提醒")
        verbose_name_plural = _("积分过期提醒")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "expires_on"], name="points_reminder_once_per_expiry"
            ),
        ]
        indexes = [
            models.Index(
                fields=["queued_at"],
                condition=Q(sent_at__isnull=True),
                name="points_reminder_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.points} @ {self.expires_on}"


class LadderStep(models.Model):
    """A rung of a rebate ladder (返利阶梯, 罗欣 / 大和): when a member's points earned in the
    current cycle reach ``threshold``, they get a coupon of ``coupon_template``. The step with
    the highest threshold closes the cycle and counting restarts."""

    threshold = models.PositiveIntegerField(_("积分门槛"), unique=True)
    coupon_template = models.ForeignKey(
        "coupons.CouponTemplate", on_delete=models.PROTECT, related_name="+", verbose_name=_("奖励")
    )

    class Meta:
        verbose_name = _("返利阶梯")
        verbose_name_plural = _("返利阶梯")
        ordering = ["threshold"]

    def __str__(self) -> str:
        return f"{self.threshold}"


class LadderProgress(models.Model):
    """A member's place on the ladder: points earned in the current cycle, and cycles completed
    in the calendar year (twelve earn the yearly bonus)."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, primary_key=True, related_name="ladder"
    )
    cycle_points = models.PositiveIntegerField(_("本轮积分"), default=0)
    year = models.PositiveSmallIntegerField(_("年份"), default=0)
    cycles = models.PositiveSmallIntegerField(_("本年完成轮数"), default=0)

    class Meta:
        verbose_name = _("返利阶梯进度")
        verbose_name_plural = _("返利阶梯进度")

    def __str__(self) -> str:
        return f"{self.member_id}: {self.cycle_points}"

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from carecard.chain.models import Store, TradingZone
from carecard.core.crypto import EncryptedJSONField, EncryptedTextField


class Gender(models.TextChoices):
    MALE = "M", _("男")
    FEMALE = "F", _("女")
    UNKNOWN = "U", _("未知")


class MemberStatus(models.TextChoices):
    ACTIVE = "active", _("正常")
    PENDING = "pending", _("待生效")  # entry rule not met yet (purchase or fee pending)
    MERGED = "merged", _("已合并")
    CANCELLED = "cancelled", _("已注销")


class AcquisitionChannel(models.TextChoices):
    """How the member was acquired (D-1)."""

    IN_STORE = "in_store", _("门店")
    NEW_MEDIA = "new_media", _("新媒体/微信扫码")
    COMMUNITY = "community", _("社区活动")
    ALLIANCE = "alliance", _("异业联盟")
    REFERRAL = "referral", _("顾客推荐")
    GROUP = "group", _("团体")
    IMPORT = "import", _("系统导入")


class ContactChannel(models.TextChoices):
    SMS = "sms", _("短信")
    WECHAT = "wechat", _("微信")
    EMAIL = "email", _("邮件")
    PHONE = "phone", _("电话")


class HealthInterest(models.TextChoices):
    """Implicit-demand interests (健康资讯兴趣, M-1)."""

    WEIGHT_LOSS = "weight_loss", _("减肥瘦身")
    DIABETES = "diabetes", _("糖尿病")
    HYPERTENSION = "hypertension", _("高血压")
    MATERNAL_INFANT = "maternal_infant", _("母婴")
    SLEEP = "sleep", _("睡眠")
    ELDERLY_CARE = "elderly_care", _("老人保健")
    BEAUTY = "beauty", _("美容养颜")
    IMMUNITY = "immunity", _("增强免疫")
    BONE_JOINT = "bone_joint", _("骨骼关节")
    TCM = "tcm", _("中医养生")


class ChronicCondition(models.TextChoices):
    HYPERTENSION = "hypertension", _("高血压")
    DIABETES = "diabetes", _("糖尿病")
    HYPERLIPIDAEMIA = "hyperlipidaemia", _("高血脂")
    CORONARY = "coronary", _("冠心病")
    KIDNEY = "kidney", _("肾病")
    LIVER = "liver", _("肝病")
    ASTHMA_COPD = "asthma_copd", _("哮喘/慢阻肺")
    GOUT = "gout", _("痛风")
    OSTEOPOROSIS = "osteoporosis", _("骨质疏松")


class EntryRule(models.TextChoices):
    FREE = "free", _("免费办卡")
    PURCHASE = "purchase", _("单次消费满额办卡")
    PAID = "paid", _("付费办卡")


class MembershipPolicy(models.Model):
    """Chain-wide member rules set by HQ (M-4, M-7, M-3 fees). One row."""

    entry_rule = models.CharField(
        _("入会规则"), max_length=16, choices=EntryRule.choices, default=EntryRule.FREE
    )
    entry_min_purchase = models.DecimalField(
        _("入会消费门槛(元)"), max_digits=10, decimal_places=2, default=Decimal("20.00")
    )
    card_fee = models.DecimalField(
        _("办卡费(元)"), max_digits=10, decimal_places=2, default=Decimal("0.00")
    )
    validity_years = models.PositiveSmallIntegerField(
        _("有效期(年)，空为长期"), null=True, blank=True
    )
    lost_card_fee = models.DecimalField(
        _("挂失补卡费(元)"), max_digits=10, decimal_places=2, default=Decimal("2.00")
    )
    damaged_card_fee = models.DecimalField(
        _("损坏换卡费(元)"), max_digits=10, decimal_places=2, default=Decimal("1.00")
    )
    required_fields = models.JSONField(
        _("完整资料必填项"),
        default=list,
        blank=True,
        help_text=_("资料完整度按这些字段计算，用于员工奖励"),
    )
    terms_version = models.CharField(_("会员章程版本"), max_length=20, default="2026-01")
    marketing_text_version = models.CharField(
        _("营销授权文本版本"), max_length=20, default="2026-01"
    )
    health_text_version = models.CharField(
        _("健康信息授权文本版本"), max_length=20, default="2026-01"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("会员规则")
        verbose_name_plural = _("会员规则")

    def __str__(self) -> str:
        return str(_("会员规则"))


class MemberGroup(models.Model):
    """A corporate / group membership (团体会员, M-6)."""

    name = models.CharField(_("单位名称"), max_length=200)
    org_code = models.CharField(_("统一社会信用代码"), max_length=32, blank=True)
    contact_name = models.CharField(_("联系人"), max_length=50)
    contact_phone = models.CharField(_("联系电话"), max_length=20)
    discount_rate = models.DecimalField(
        _("团体折扣"), max_digits=4, decimal_places=3, null=True, blank=True
    )
    discount_excludes_points = models.BooleanField(_("团体折扣与积分互斥"), default=True)
    store = models.ForeignKey(
        Store, on_delete=models.PROTECT, related_name="member_groups", verbose_name=_("开发门店")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("团体")
        verbose_name_plural = _("团体")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Household(models.Model):
    """A family account (家庭会员, M-6a): members linked to a holder, optionally sharing points."""

    name = models.CharField(_("家庭名称"), max_length=100)
    holder = models.ForeignKey(
        "Member", on_delete=models.PROTECT, related_name="+", verbose_name=_("户主")
    )
    share_points = models.BooleanField(_("共享积分"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("家庭")
        verbose_name_plural = _("家庭")

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    """A member (会员): one person, one membership (M-1, M-2).

    Phone and ID number are unique among live members (database constraints). The ID number and
    health fields are encrypted; ``id_number_index`` is a keyed hash used to detect duplicates.
    """

    # Uniqueness of the numbers is declared in Meta: a field's unique=True also makes PostgreSQL
    # build a second, pattern-ops index that no query uses and every insert pays for.
    member_no = models.CharField(_("会员号"), max_length=20)
    external_code = models.CharField(_("外部编码"), max_length=64, null=True, blank=True)
    status = models.CharField(
        _("状态"), max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    name = models.CharField(_("姓名"), max_length=50)
    gender = models.CharField(
        _("性别"), max_length=1, choices=Gender.choices, default=Gender.UNKNOWN
    )
    birthday = models.DateField(_("生日(公历)"), null=True, blank=True)
    birthday_is_lunar = models.BooleanField(_("按农历过生日"), default=False)
    lunar_birthday = models.CharField(
        _("农历生日"),
        max_length=16,
        blank=True,
        help_text="YYYY-MM-DD，闰月以 L 标记月份，如 1980-L04-12",
    )
    phone = models.CharField(_("手机"), max_length=20, null=True, blank=True)
    phone_tail = models.CharField(max_length=4, blank=True)
    email = models.EmailField(_("邮箱"), blank=True)
    id_number = EncryptedTextField(_("身份证号"), blank=True)
    id_number_index = models.CharField(max_length=64, null=True, blank=True)
    address = models.CharField(_("地址"), max_length=300, blank=True)
    province = models.CharField(_("省"), max_length=32, blank=True)
    city = models.CharField(_("市"), max_length=32, blank=True)
    district = models.CharField(_("区县"), max_length=32, blank=True)
    community = models.CharField(_("街道/小区"), max_length=200, blank=True)
    zone = models.ForeignKey(
        TradingZone,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        verbose_name=_("商圈"),
    )
    allergies = EncryptedJSONField(_("药物过敏"), blank=True, default=list)
    medical_history = EncryptedJSONField(_("既往病史"), blank=True, default=list)
    chronic_conditions = EncryptedJSONField(_("慢性病"), blank=True, default=list)
    health_interests = models.JSONField(_("健康资讯兴趣"), default=list, blank=True)
    contact_channels = models.JSONField(_("可联系渠道"), default=list, blank=True)
    preferred_channel = models.CharField(
        _("首选渠道"), max_length=10, choices=ContactChannel.choices, blank=True
    )
    acquisition_channel = models.CharField(
        _("开发渠道"),
        max_length=16,
        choices=AcquisitionChannel.choices,
        default=AcquisitionChannel.IN_STORE,
    )
    heard_from = models.CharField(_("传播渠道"), max_length=50, blank=True)
    campaign_code = models.CharField(_("推广码"), max_length=32, blank=True)
    home_store = models.ForeignKey(
        Store,
        on_delete=models.PROTECT,
        related_name="members",
        verbose_name=_("开卡门店"),
        db_index=False,  # (home_store, enrolled_at) below serves it
    )
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="enrolled_members",
        verbose_name=_("开卡员工"),
        db_index=False,  # partial index in Meta
    )
    referrer = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referred",
        verbose_name=_("推荐人"),
        db_index=False,  # partial index in Meta
    )
    referral_code = models.CharField(_("推荐码"), max_length=12)
    group = models.ForeignKey(
        MemberGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        verbose_name=_("团体"),
        db_index=False,  # partial index in Meta
    )
    household = models.ForeignKey(
        Household,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        verbose_name=_("家庭"),
        db_index=False,  # partial index in Meta
    )
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="absorbed",
        verbose_name=_("合并至"),
        db_index=False,  # partial index in Meta
    )
    consent_marketing = models.BooleanField(_("同意营销信息"), default=False)
    consent_health = models.BooleanField(_("同意处理健康信息"), default=False)
    completeness = models.PositiveSmallIntegerField(_("资料完整度%"), default=0)
    is_complete = models.BooleanField(_("资料完整"), default=False)
    valid_until = models.DateField(_("有效期至"), null=True, blank=True)
    enrolled_at = models.DateTimeField(_("入会时间"))
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("会员")
        verbose_name_plural = _("会员")
        constraints = [
            models.UniqueConstraint(fields=["member_no"], name="member_unique_no"),
            models.UniqueConstraint(fields=["external_code"], name="member_unique_external_code"),
            models.UniqueConstraint(fields=["referral_code"], name="member_unique_referral_code"),
            models.UniqueConstraint(
                fields=["phone"],
                condition=Q(status__in=["active", "pending"]),
                name="member_unique_live_phone",
            ),
            models.UniqueConstraint(
                fields=["id_number_index"],
                condition=Q(status__in=["active", "pending"]),
                name="member_unique_live_id_number",
            ),
            models.CheckConstraint(
                condition=Q(completeness__lte=100), name="member_completeness_pct"
            ),
        ]
        indexes = [
            models.Index(fields=["phone_tail", "name"], name="member_phone_tail_name"),
            models.Index(fields=["name", "birthday"], name="member_name_birthday"),
            models.Index(fields=["home_store", "enrolled_at"], name="member_store_enrolled"),
            # SQLite cannot use the partial unique indexes above when the status list is bound
            # as parameters (as the ORM does): without these a phone or ID lookup scans the table.
            models.Index(fields=["phone"], name="member_phone"),
            models.Index(fields=["id_number_index"], name="member_id_number_index"),
            # Links most members do not have: partial indexes skip the NULLs, so an enrolment
            # or an import row pays nothing for them, and "x = id" still uses them.
            *(
                models.Index(
                    fields=[fk], condition=Q(**{f"{fk}__isnull": False}), name=f"member_{fk}"
                )
                for fk in ("enrolled_by", "referrer", "group", "household", "merged_into")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.member_no})"

    @property
    def is_live(self) -> bool:
        return self.status in (MemberStatus.ACTIVE, MemberStatus.PENDING)


class MemberSearchKey(models.Model):
    """Pinyin keys of a member's name (``zsf``, ``zhangsanfeng``), every polyphonic reading."""

    # (member, key) below serves the foreign key and "does this member have a key starting
    # with …" (phone tail + initials) from the index alone.
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="search_keys", db_index=False
    )
    key = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "member"], name="search_key_unique"),
        ]
        indexes = [models.Index(fields=["member", "key"], name="search_key_member_key")]

    def __str__(self) -> str:
        return self.key


class CardKind(models.TextChoices):
    PHYSICAL = "physical", _("实体卡")
    VIRTUAL = "virtual", _("电子卡")


class CardStatus(models.TextChoices):
    ACTIVE = "active", _("正常")
    FROZEN = "frozen", _("已挂失")
    REPLACED = "replaced", _("已补换")
    CANCELLED = "cancelled", _("已注销")


class Card(models.Model):
    """A membership card (M-3). Points and balances belong to the member, not the card, so a
    replacement keeps them; a frozen card can no longer be used at the till."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="cards")
    number = models.CharField(_("卡号"), max_length=32)  # unique: Meta
    kind = models.CharField(_("类型"), max_length=10, choices=CardKind.choices)
    status = models.CharField(
        _("状态"), max_length=10, choices=CardStatus.choices, default=CardStatus.ACTIVE
    )
    issued_at = models.DateTimeField(_("发卡时间"))
    issued_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("发卡门店"),
        db_index=False,  # only a store's deletion asks, and a store with members cannot go
    )
    frozen_at = models.DateTimeField(_("挂失时间"), null=True, blank=True)
    closed_at = models.DateTimeField(_("停用时间"), null=True, blank=True)
    replaced_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("新卡"),
        db_index=False,  # unique where set: Meta
    )
    fee = models.DecimalField(_("工本费"), max_digits=8, decimal_places=2, default=Decimal("0"))
    note = models.CharField(_("备注"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("会员卡")
        verbose_name_plural = _("会员卡")
        ordering = ["member_id", "-issued_at"]
        constraints = [
            # At most one usable virtual card per member.
            models.UniqueConstraint(
                fields=["member"],
                condition=Q(kind="virtual", status="active"),
                name="card_one_active_virtual",
            ),
            models.UniqueConstraint(fields=["number"], name="card_unique_number"),
            models.UniqueConstraint(
                fields=["replaced_by"],
                condition=Q(replaced_by__isnull=False),
                name="card_unique_replaced_by",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class ConsentPurpose(models.TextChoices):
    TERMS = "terms", _("会员章程")
    MARKETING = "marketing", _("营销信息")
    HEALTH_DATA = "health_data", _("健康信息处理(敏感个人信息)")


class Consent(models.Model):
    """One consent decision (G-1). Append-only: the newest row per purpose is in force."""

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="consents",
        db_index=False,  # consent_latest (member, purpose, -at) serves it
    )
    purpose = models.CharField(_("用途"), max_length=16, choices=ConsentPurpose.choices)
    granted = models.BooleanField(_("同意"))
    text_version = models.CharField(_("文本版本"), max_length=20)
    channel = models.CharField(_("渠道"), max_length=20)
    at = models.DateTimeField(_("时间"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # partial index in Meta
    )

    class Meta:
        verbose_name = _("授权记录")
        verbose_name_plural = _("授权记录")
        ordering = ["member_id", "-at", "-id"]
        indexes = [
            models.Index(fields=["member", "purpose", "-at"], name="consent_latest"),
            models.Index(
                fields=["recorded_by"],
                condition=Q(recorded_by__isnull=False),
                name="consent_recorded_by",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {'✓' if self.granted else '✗'}"


class MemberMerge(models.Model):
    """A merge of a duplicate into a surviving member (M-2), with counts of what moved."""

    survivor = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="merges_in")
    absorbed = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="merges_out")
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_at = models.DateTimeField()
    moved = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("会员合并")
        verbose_name_plural = _("会员合并")

    def __str__(self) -> str:
        return f"{self.absorbed_id} → {self.survivor_id}"


class DuplicateDismissal(models.Model):
    """A pair of members reviewed and judged to be different people."""

    member_a = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    member_b = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    dismissed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member_a", "member_b"], name="dup_dismiss_pair"),
            models.CheckConstraint(
                condition=Q(member_a__lt=models.F("member_b")), name="dup_dismiss_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_a_id} ≠ {self.member_b_id}"

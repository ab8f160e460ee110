from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from carecard.core.roles import HQ_ROLES, SCOPED_PERMS, Role, role_has


class Region(models.Model):
    """A region of the chain (片区), grouping stores."""

    code = models.CharField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=100)

    class Meta:
        verbose_name = _("片区")
        verbose_name_plural = _("片区")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Store(models.Model):
    """A pharmacy store (门店) with its address and opening date (A-1)."""

    code = models.CharField(_("门店编码"), max_length=32, unique=True)
    name = models.CharField(_("门店名称"), max_length=100)
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="stores", verbose_name=_("片区")
    )
    province = models.CharField(_("省"), max_length=32, blank=True)
    city = models.CharField(_("市"), max_length=32, blank=True)
    district = models.CharField(_("区县"), max_length=32, blank=True)
    street = models.CharField(_("街道地址"), max_length=200, blank=True)
    phone = models.CharField(_("电话"), max_length=32, blank=True)
    opened_on = models.DateField(_("开业日期"), null=True, blank=True)
    is_active = models.BooleanField(_("营业中"), default=True)

    class Meta:
        verbose_name = _("门店")
        verbose_name_plural = _("门店")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name}"

    @property
    def address(self) -> str:
        return (
            f"{self.province}{self.city if self.city != self.province else ''}"
            f"{self.district}{self.street}"
        )


class TradingZone(models.Model):
    """A trading-area zone (商圈) of a store, with its household count (D-5).

    ``districts`` lists the street/community names that fall in the zone; enrolment assigns a
    member to the zone whose district and keywords match the member's address.
    """

    store = models.ForeignKey(
        Store, on_delete=models.CASCADE, related_name="zones", verbose_name=_("门店")
    )
    name = models.CharField(_("商圈名称"), max_length=100)
    district = models.CharField(_("区县"), max_length=32, blank=True)
    keywords = models.JSONField(_("街道/小区关键词"), default=list, blank=True)
    households = models.PositiveIntegerField(_("户数"), default=0)

    class Meta:
        verbose_name = _("商圈")
        verbose_name_plural = _("商圈")
        ordering = ["store_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["store", "name"], name="zone_unique_name_per_store"),
        ]

    def __str__(self) -> str:
        return self.name


class Staff(AbstractUser):
    """A staff account: a role and a home store (A-2). HQ roles have no home store."""

    display_name = models.CharField(_("姓名"), max_length=50, blank=True)
    role = models.CharField(_("角色"), max_length=20, choices=Role.choices, default=Role.CLERK)
    home_store = models.ForeignKey(
        Store,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        verbose_name=_("所属门店"),
    )
    staff_code = models.CharField(_("工号"), max_length=32, blank=True)
    mobile = models.CharField(_("手机"), max_length=20, blank=True)
    failed_logins = models.PositiveSmallIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("员工")
        verbose_name_plural = _("员工")
        constraints = [
            models.UniqueConstraint(
                fields=["staff_code"], condition=~models.Q(staff_code=""), name="staff_unique_code"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.username

    @property
    def is_hq(self) -> bool:
        return self.role in HQ_ROLES

    def has_perm(self, perm: str, obj: object = None) -> bool:
        # Django admin (catalog and configuration) follows the CareCard role, not Django's
        # per-model permission tables: HQ administrators manage it.
        if self.is_active and self.role == Role.HQ_ADMIN:
            return True
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label: str) -> bool:
        if self.is_active and self.role == Role.HQ_ADMIN:
            return True
        return super().has_module_perms(app_label)

    def can(self, perm: str) -> bool:
        return self.is_active and role_has(self.role, perm)

    def can_for_store(self, perm: str, store_id: int | None) -> bool:
        """A scoped permission: store roles hold it only for their home store's members."""
        if not self.can(perm):
            return False
        if perm not in SCOPED_PERMS or self.is_hq:
            return True
        return store_id is not None and store_id == self.home_store_id


class PosTerminal(models.Model):
    """A POS terminal bound to one store; authenticates to the API with a token (A-3).

    Only a SHA-256 hash of the token is stored; the token is shown once when issued.
    """

    store = models.ForeignKey(
        Store, on_delete=models.PROTECT, related_name="terminals", verbose_name=_("门店")
    )
    code = models.CharField(_("终端编号"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(_("凭证前缀"), max_length=12)
    issued_at = models.DateTimeField(_("签发时间"))
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("吊销时间"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)

    class Meta:
        verbose_name = _("POS终端")
        verbose_name_plural = _("POS终端")
        ordering = ["store_id", "code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.store})"

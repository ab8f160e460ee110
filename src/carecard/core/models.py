from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    LOGIN = "login", _("登录")
    LOGIN_FAILED = "login_failed", _("登录失败")
    LOGIN_LOCKED = "login_locked", _("账号锁定")
    LOGOUT = "logout", _("退出")
    HEALTH_READ = "health_read", _("查看健康信息")
    ID_READ = "id_read", _("查看身份证号")
    EXPORT = "export", _("导出")
    MEMBER_ENROL = "member_enrol", _("会员建档")
    MEMBER_UPDATE = "member_update", _("修改会员资料")
    MEMBER_MERGE = "member_merge", _("合并会员")
    CARD_LOST = "card_lost", _("卡挂失")
    CARD_REPLACE = "card_replace", _("补卡")
    CARD_CANCEL = "card_cancel", _("销卡")
    CONSENT = "consent", _("授权变更")
    ROLE_CHANGE = "role_change", _("角色/权限变更")
    STAFF_CREATE = "staff_create", _("新增员工")
    TERMINAL = "terminal", _("终端凭证")
    IMPORT = "import", _("数据导入")
    SETTINGS = "settings", _("配置变更")
    POINTS_ADJUST = "points_adjust", _("积分人工调整")
    COUPON_VOID = "coupon_void", _("作废优惠券")
    COUPON_BATCH = "coupon_batch", _("生成印刷券码")
    WALLET_REFUND = "wallet_refund", _("储值退款")
    WALLET_ADJUST = "wallet_adjust", _("储值人工调整")


class AuditEntry(models.Model):
    """One audited event (G-4). Append-only: never updated or deleted by the application.

    ``member_id`` is a plain column (no foreign key) so the trail outlives merges and
    anonymisation, and so the table can be distributed by member later.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, blank=True)
    terminal_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    member_id = models.BigIntegerField(null=True, blank=True)
    store_id = models.BigIntegerField(null=True, blank=True)
    target = models.CharField(max_length=100, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = _("审计记录")
        verbose_name_plural = _("审计日志")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["member_id", "-at"], name="audit_member_at"),
            models.Index(fields=["action", "-at"], name="audit_action_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.get_action_display()}"


class IdempotencyRecord(models.Model):
    """The stored first answer to a retryable write (C-2, C-5).

    ``scope`` names the caller (``terminal:12`` or ``staff:3``) so two tills may use the same key.
    The record is inserted *before* the work, in the same transaction: a concurrent retry waits
    on the unique index and then finds the committed answer.
    """

    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=100)
    operation = models.CharField(max_length=40)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(default=200)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("幂等记录")
        verbose_name_plural = _("幂等记录")
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}/{self.key}"

"""HQ configuration of member pricing, earning, tiers and the points programme (C-3, P-1, T-1);
the points ledger read-only, for audit.

The forms check every JSON field with the same parsers the till uses, so a typo is refused
here instead of failing (or widening a discount) at the counter.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from carecard.core.roles import Role
from carecard.loyalty.config import schedule_of, scope_of
from carecard.loyalty.earning import TENDER_KINDS
from carecard.loyalty.models import (
    EarningPlan,
    PointsEntry,
    PointsProgram,
    PricingRule,
    Tier,
)
from carecard.loyalty.rules import RuleError

TENDER_CODES = tuple(sorted(TENDER_KINDS))

# Called after every change made here. The counter caches these rules for a few seconds per
# process; checkout (which may import loyalty, not the other way round) registers its
# ``config.invalidate`` so the process that made the change sees it at once.
CONFIG_CHANGED: list[Callable[[], None]] = []


class ConfigAdmin(admin.ModelAdmin):
    """Admin of a rule the counter caches: tell the cache after each change."""

    def _changed(self) -> None:
        for callback in CONFIG_CHANGED:
            callback()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._changed()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        self._changed()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        self._changed()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        self._changed()


def _is_auditor(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and getattr(user, "role", "") == Role.AUDITOR)


class AuditReadOnlyAdmin(admin.ModelAdmin):
    """Ledgers and receipts change only through the services (lock, entry and cache together):
    here they are read, by HQ administrators and auditors."""

    show_full_result_count = False  # no COUNT(*) over the whole ledger on every page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_auditor(request) or super().has_view_permission(request, obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_auditor(request) or super().has_module_permission(request)


class SingletonAdmin(ConfigAdmin):
    """One row of settings: it can be edited, not added twice or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not self.model.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _check_scope(value: Any) -> None:
    if value in (None, ""):
        return
    if not isinstance(value, dict):
        raise forms.ValidationError(_('适用范围应为 JSON 对象，例如 {"exclude_classes": ["rx"]}'))
    try:
        scope_of(value)
    except RuleError as exc:
        raise forms.ValidationError(exc.message) from exc
    except (ValueError, TypeError) as exc:
        raise forms.ValidationError(str(exc)) from exc


def _check_schedule(kind: str, days: Any, dates: Any, **dates_kw: Any) -> None:
    if not isinstance(days or [], list) or not isinstance(dates or [], list):
        raise forms.ValidationError(_("日期应为 JSON 列表"))
    try:
        schedule_of(kind, days, dates, **dates_kw)
    except RuleError as exc:
        raise forms.ValidationError(exc.message) from exc
    except (ValueError, TypeError) as exc:
        raise forms.ValidationError(str(exc)) from exc


def _check_multipliers(value: Any, field: str) -> None:
    if not isinstance(value or {}, dict):
        raise forms.ValidationError({field: _('应为 JSON 对象，例如 {"1001": "2"}')})
    for key, raw in (value or {}).items():
        try:
            number = Decimal(str(raw))
        except InvalidOperation as exc:
            raise forms.ValidationError({field: _("%(k)s 的倍数不是数字") % {"k": key}}) from exc
        if not number.is_finite() or number <= 0:
            raise forms.ValidationError({field: _("%(k)s 的倍数应大于 0") % {"k": key}})


class PricingRuleForm(forms.ModelForm):
    class Meta:
        model = PricingRule
        fields = (
            "name",
            "kind",
            "rate",
            "position",
            "active",
            "schedule_kind",
            "schedule_days",
            "schedule_dates",
            "effective_from",
            "effective_to",
            "tiers",
            "scope",
            "regions",
            "applies_to_flagged",
            "funded_by",
            "legal_basis",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        rate = data.get("rate")
        if kind and kind != "member_price" and rate is None:
            self.add_error("rate", _("该类型需要填写折扣率，例如 0.95 表示 9.5 折"))
        if rate is not None and not Decimal(0) < rate <= Decimal(1):
            self.add_error("rate", _("折扣率应在 0 到 1 之间"))
        try:
            _check_schedule(
                data.get("schedule_kind") or "every_day",
                data.get("schedule_days"),
                data.get("schedule_dates"),
                effective_from=data.get("effective_from"),
                effective_to=data.get("effective_to"),
            )
        except forms.ValidationError as exc:
            self.add_error("schedule_days", exc)
        try:
            _check_scope(data.get("scope"))
        except forms.ValidationError as exc:
            self.add_error("scope", exc)
        for name in ("tiers", "regions"):
            if not isinstance(data.get(name) or [], list):
                self.add_error(name, _("应为 JSON 列表"))
        return data


@admin.register(PricingRule)
class PricingRuleAdmin(ConfigAdmin):
    form = PricingRuleForm
    list_display = (
        "name",
        "kind",
        "rate",
        "schedule_kind",
        "schedule_days",
        "tiers",
        "position",
        "active",
    )
    list_editable = ("position", "active")
    list_filter = ("kind", "active", "schedule_kind")
    search_fields = ("name", "legal_basis")
    fieldsets = (
        (_("规则"), {"fields": ("name", "kind", "rate", "position", "active")}),
        (
            _("日程"),
            {
                "fields": (
                    "schedule_kind",
                    "schedule_days",
                    "schedule_dates",
                    ("effective_from", "effective_to"),
                ),
                "description": _(
                    "农历每月某日：[8, 18, 28]；公历每月某日：[1, 11, 21]；每周某天：0=周一 … "
                    "6=周日；固定日期：[[3, 8]]"
                ),
            },
        ),
        (
            _("适用范围"),
            {
                "fields": ("tiers", "scope", "regions", "applies_to_flagged"),
                "description": _(
                    '适用等级填等级编码列表，如 ["gold"]；适用范围如 '
                    '{"exclude_classes": ["rx"]}；适用区域填区域 ID 列表，空为全部门店'
                ),
            },
        ),
        (_("费用与法规"), {"fields": ("funded_by", "legal_basis")}),
    )


class EarningPlanForm(forms.ModelForm):
    class Meta:
        model = EarningPlan
        fields = (
            "name",
            "amount_per_point",
            "rounding",
            "min_amount",
            "receipt_bonus",
            "position",
            "active",
            "scope",
            "sku_multipliers",
            "category_multipliers",
            "tier_multipliers",
            "day_multipliers",
            "non_earning_tenders",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        per = data.get("amount_per_point")
        if per is not None and per <= 0:
            self.add_error("amount_per_point", _("应大于 0"))
        try:
            _check_scope(data.get("scope"))
        except forms.ValidationError as exc:
            self.add_error("scope", exc)
        for name in ("sku_multipliers", "category_multipliers", "tier_multipliers"):
            try:
                _check_multipliers(data.get(name), name)
            except forms.ValidationError as exc:
                self.add_error(None, exc)
        days = data.get("day_multipliers") or []
        if not isinstance(days, list):
            self.add_error("day_multipliers", _("应为 JSON 列表"))
        else:
            for day in days:
                try:
                    if not isinstance(day, dict) or "schedule_kind" not in day:
                        raise forms.ValidationError(_("每项需要 schedule_kind 和 multiplier"))
                    _check_schedule(day["schedule_kind"], day.get("days"), day.get("dates"))
                    _check_multipliers({day.get("name", "?"): day.get("multiplier")}, "x")
                except forms.ValidationError as exc:
                    self.add_error("day_multipliers", exc.messages[0])
                    break
        tenders = data.get("non_earning_tenders") or []
        if not isinstance(tenders, list) or any(t not in TENDER_CODES for t in tenders):
            self.add_error(
                "non_earning_tenders",
                _("应为支付方式编码列表：%(c)s") % {"c": ", ".join(TENDER_CODES)},
            )
        return data


@admin.register(EarningPlan)
class EarningPlanAdmin(ConfigAdmin):
    form = EarningPlanForm
    list_display = ("name", "amount_per_point", "rounding", "receipt_bonus", "position", "active")
    list_editable = ("position", "active")
    list_filter = ("active",)
    fieldsets = (
        (
            _("积分规则"),
            {
                "fields": (
                    "name",
                    "amount_per_point",
                    "rounding",
                    "min_amount",
                    "receipt_bonus",
                    "position",
                    "active",
                )
            },
        ),
        (
            _("倍数与范围"),
            {
                "fields": (
                    "scope",
                    "sku_multipliers",
                    "category_multipliers",
                    "tier_multipliers",
                    "day_multipliers",
                    "non_earning_tenders",
                ),
                "description": _(
                    "医保统筹、医保个人账户和积分抵现支付的部分始终不积分；"
                    '商品倍数如 {"100123": "2"}，等级倍数如 {"gold": "1.5"}'
                ),
            },
        ),
    )


@admin.register(Tier)
class TierAdmin(ConfigAdmin):
    list_display = (
        "rank",
        "code",
        "name",
        "basis",
        "threshold",
        "window_months",
        "fee",
        "benefits",
    )
    list_display_links = ("code", "name")
    ordering = ("rank",)
    fieldsets = (
        (_("等级"), {"fields": ("code", "name", "rank", "benefits")}),
        (_("升级门槛"), {"fields": ("basis", "threshold", "window_months")}),
        (_("付费等级"), {"fields": ("fee", "paid_months")}),
    )


@admin.register(PointsProgram)
class PointsProgramAdmin(SingletonAdmin):
    list_display = (
        "__str__",
        "expiry_policy",
        "expiry_months",
        "pending_days",
        "shortfall_policy",
        "point_value",
        "updated_at",
    )


@admin.register(PointsEntry)
class PointsEntryAdmin(AuditReadOnlyAdmin):
    list_display = (
        "at",
        "member",
        "kind",
        "points",
        "balance_after",
        "reference",
        "reason",
        "store",
        "actor",
    )
    list_filter = ("kind",)
    list_select_related = ("member", "store", "actor")
    search_fields = ("member__member_no", "=reference")
    raw_id_fields = ("member", "corrects")
    ordering = ("-at", "-id")

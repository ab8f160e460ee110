"""HQ configuration of the counter (stacking, returns, points as payment) and the receipts,
read-only, for audit. Sales are written only by ``checkout.services``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from carecard.checkout import config
from carecard.checkout.models import CheckoutSettings, Sale, SaleLine, SaleTender
from carecard.loyalty.admin import CONFIG_CHANGED, AuditReadOnlyAdmin, SingletonAdmin

# Rules edited in the admin (here and in loyalty's) reach this process's counter at once.
if config.invalidate not in CONFIG_CHANGED:
    CONFIG_CHANGED.append(config.invalidate)


@admin.register(CheckoutSettings)
class CheckoutSettingsAdmin(SingletonAdmin):
    list_display = (
        "__str__",
        "stacking",
        "coupon_stacking",
        "coupons_on_flagged",
        "return_days",
        "points_per_yuan",
    )


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # whoever may view the sale (checked by SaleAdmin) sees its lines


class SaleLineInline(_ReadOnlyInline):
    model = SaleLine
    fields = (
        "line_no",
        "sku",
        "name",
        "quantity",
        "unit_price",
        "original",
        "discount",
        "reasons",
        "net",
        "points",
        "returned_quantity",
    )
    readonly_fields = fields
    ordering = ("line_no",)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("discounts")

    @admin.display(description=_("优惠原因"))
    def reasons(self, line: SaleLine) -> str:
        return format_html_join(
            "", "<div>{} −{}</div>", ((d.reason, d.amount) for d in line.discounts.all())
        )


class SaleTenderInline(_ReadOnlyInline):
    model = SaleTender
    fields = ("kind", "amount", "points", "reference")
    readonly_fields = fields


@admin.register(Sale)
class SaleAdmin(AuditReadOnlyAdmin):
    list_display = (
        "receipt_no",
        "kind",
        "at",
        "store",
        "member",
        "net_total",
        "points_earned",
        "points_balance",
        "offline",
    )
    list_filter = ("kind", "offline")
    list_select_related = ("store", "member")
    search_fields = ("=receipt_no", "member__member_no")
    ordering = ("-at", "-id")
    inlines = (SaleLineInline, SaleTenderInline)
    readonly_fields = ("console_link",)
    fields = (
        "console_link",
        "receipt_no",
        "kind",
        "original_sale",
        "member",
        "store",
        "terminal",
        "staff",
        "at",
        "business_date",
        "recorded_at",
        "offline",
        "original_total",
        "discount_total",
        "net_total",
        "points_earned",
        "points_spent",
        "points_balance",
        "recovered_amount",
        "explanation",
    )

    @admin.display(description=_("小票"))
    def console_link(self, sale: Sale) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("console:sale_receipt", args=[sale.pk]),
            _("在控制台查看"),
        )

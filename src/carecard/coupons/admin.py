from django.contrib import admin

from carecard.coupons.models import (
    Coupon,
    CouponBatch,
    CouponEvent,
    CouponTemplate,
    PurchaseRule,
)

# What a coupon is worth and where it applies: frozen once coupons exist, because the till
# reads them from the template for every coupon already issued.
TERMS_FIELDS = (
    "kind",
    "value",
    "rate",
    "max_off",
    "min_spend",
    "scope",
    "applies_to_flagged",
    "valid_from",
    "valid_until",
    "valid_days",
    "stacking_group",
    "funded_by",
    "points_funded",
    "members_only",
)


@admin.register(CouponTemplate)
class CouponTemplateAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "value",
        "rate",
        "min_spend",
        "valid_until",
        "valid_days",
        "per_member_limit",
        "funded_by",
        "campaign_code",
        "active",
    )
    list_filter = ("kind", "active", "funded_by", "points_funded")
    search_fields = ("name", "campaign_code", "vendor_name")
    filter_horizontal = ("stores",)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.coupons.exists():
            return TERMS_FIELDS
        return ()

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.coupons.exists()


class CouponEventInline(admin.TabularInline):
    model = CouponEvent
    extra = 0
    can_delete = False
    fields = ("kind", "at", "store", "actor", "reference", "amount", "reason", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    """Read-only: coupons change only through the services (issue, redeem, void …)."""

    list_display = (
        "code",
        "template",
        "member",
        "status",
        "source",
        "valid_from",
        "valid_until",
        "redeemed_at",
        "redeemed_amount",
    )
    list_filter = ("status", "source")
    search_fields = ("code", "source_reference", "redeemed_reference", "campaign_code")
    list_select_related = ("template", "member")
    raw_id_fields = ("member", "template", "batch")
    inlines = (CouponEventInline,)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CouponBatch)
class CouponBatchAdmin(admin.ModelAdmin):
    """Read-only: batches are made with ``coupon_batch_create`` (unique codes, audited)."""

    list_display = ("pk", "template", "count", "prefix", "created_by", "created_at")
    list_select_related = ("template", "created_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PurchaseRule)
class PurchaseRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "template",
        "min_amount",
        "quantity",
        "repeat",
        "max_per_receipt",
        "starts_on",
        "ends_on",
        "active",
    )
    list_filter = ("active", "repeat")
    filter_horizontal = ("stores",)

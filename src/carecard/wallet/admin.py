from django.contrib import admin

from carecard.wallet.models import TopupRule, WalletAccount, WalletEntry, WalletPolicy


@admin.register(WalletPolicy)
class WalletPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "enabled",
        "balance_cap",
        "unnamed_cap",
        "real_name_required",
        "bonus_refundable",
        "refund_rule",
        "updated_at",
    )

    def has_add_permission(self, request):  # one row
        return not WalletPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TopupRule)
class TopupRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "min_amount", "bonus", "valid_from", "valid_to", "active")
    list_filter = ("active",)
    search_fields = ("name",)


class _ReadOnly(admin.ModelAdmin):
    """The ledger changes only through wallet.services (lock, entry and cache together)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WalletAccount)
class WalletAccountAdmin(_ReadOnly):
    list_display = (
        "member",
        "balance",
        "principal",
        "bonus",
        "lifetime_topup",
        "lifetime_paid",
        "lifetime_refunded",
        "updated_at",
    )
    list_select_related = ("member",)
    search_fields = ("member__member_no",)
    raw_id_fields = ("member",)


@admin.register(WalletEntry)
class WalletEntryAdmin(_ReadOnly):
    list_display = (
        "at",
        "member",
        "kind",
        "amount",
        "principal",
        "bonus",
        "balance_after",
        "tender",
        "reference",
        "store",
        "actor",
    )
    list_filter = ("kind", "tender")
    list_select_related = ("member", "store", "actor")
    search_fields = ("reference", "member__member_no")
    raw_id_fields = ("member", "store", "actor", "corrects")
    date_hierarchy = "at"

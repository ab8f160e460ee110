from django.contrib import admin

from carecard.members.models import Household, MemberGroup, MembershipPolicy


@admin.register(MembershipPolicy)
class MembershipPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "entry_rule",
        "entry_min_purchase",
        "card_fee",
        "lost_card_fee",
        "updated_at",
    )

    def has_add_permission(self, request):
        return not MembershipPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MemberGroup)
class MemberGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_name", "contact_phone", "discount_rate", "store")
    search_fields = ("name", "org_code")


@admin.register(Household)
class HouseholdAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "share_points", "created_at")
    raw_id_fields = ("holder",)

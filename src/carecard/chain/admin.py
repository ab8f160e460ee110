from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from carecard.chain.models import PosTerminal, Region, Staff, Store, TradingZone


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("code", "name")


class ZoneInline(admin.TabularInline):
    model = TradingZone
    extra = 0


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "region", "city", "district", "opened_on", "is_active")
    list_filter = ("region", "is_active")
    search_fields = ("code", "name")
    inlines = [ZoneInline]


@admin.register(Staff)
class StaffAdmin(UserAdmin):
    list_display = ("username", "display_name", "role", "home_store", "is_active")
    list_filter = ("role", "home_store")
    fieldsets = (
        *UserAdmin.fieldsets,
        (
            "CareCard",
            {
                "fields": (
                    "display_name",
                    "role",
                    "home_store",
                    "staff_code",
                    "mobile",
                    "locked_until",
                )
            },
        ),
    )


@admin.register(PosTerminal)
class PosTerminalAdmin(admin.ModelAdmin):
    list_display = ("code", "store", "token_prefix", "issued_at", "expires_at", "revoked_at")
    readonly_fields = ("token_hash", "token_prefix", "issued_at", "last_used_at")

from django.contrib import admin

from carecard.core.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_label", "action", "member_id", "store_id", "target", "ip")
    list_filter = ("action",)
    search_fields = ("actor_label", "target")

    def has_add_permission(self, request):  # append-only
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

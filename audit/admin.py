from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry
from tenancy.admin import TenantScopedAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantScopedAdmin):
    """Read-only: the audit trail is append-only, even for superusers."""

    list_display = ["at", "tenant", "actor", "action", "target_type", "target_id", "member_id", "correlation_id"]
    list_filter = ["action", "source", "at"]
    search_fields = ["member_id", "target_id", "actor", "correlation_id", "action"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

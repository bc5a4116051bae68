from django.contrib import admin

from audit.models import AuditEntry
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Read-only: the audit trail is append-only, even for superusers."""

    list_display = ["at", "tenant", "actor", "action", "target_type", "target_id", "member_id", "correlation_id"]
    list_filter = ["action", "source", "at"]
    search_fields = ["member_id", "target_id", "actor", "correlation_id", "action"]
    date_hierarchy = "at"

import json

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from events.models import OutboxMessage
from tenancy.admin import TenantScopedAdmin


@admin.register(OutboxMessage)
class OutboxMessageAdmin(TenantScopedAdmin):
    """Outbox messages as written; delivery state is managed by the relay, not edited by hand."""

    list_display = ["created_at", "tenant", "type", "member_id", "sequence", "status", "attempts", "next_attempt_at"]
    list_filter = ["status", "type"]
    search_fields = ["member_id", "correlation_id", "=id"]
    date_hierarchy = "created_at"
    readonly_fields = ["pretty_envelope"]
    fields = ["pretty_envelope", "status", "attempts", "next_attempt_at", "last_error", "delivered_at"]

    @admin.display(description="message")
    def pretty_envelope(self, obj: OutboxMessage) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.envelope(), indent=2, default=str))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

"""The portal's view of the integrations: notifications sent to members through the Notification
service (read-only: written by ``events.notifications`` and the relay). Failed point-transaction syncs
are retried by replaying their deliveries."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from events.models import Notification
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin

FIELDS = (
    "id",
    "tenant",
    "member",
    "channel",
    "template",
    "data",
    "status",
    "external_id",
    "attempts",
    "last_error",
    "correlation_id",
    "created_at",
    "updated_at",
)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["created_at", "member", "channel", "template", "status", "attempts", "external_id"]
    list_filter = ["status", "channel"]
    search_fields = ["member__external_id", "template", "external_id", "=id"]
    list_select_related = ["member"]
    date_hierarchy = "created_at"
    fields = FIELDS
    readonly_fields = FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("member")

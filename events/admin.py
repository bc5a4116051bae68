"""The portal for member events (DOMAIN §7): as received, failed and dead ones replayable. Every page
is limited to the staff user's tenants. The outbox's pages are ``outbox.admin``.
"""

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from events.ingestion import replay_event
from members.models import MemberEvent
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin


@admin.register(MemberEvent)
class MemberEventAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Member events as received; failed and dead ones can be replayed (through the service)."""

    list_display = [
        "received_at",
        "tenant",
        "member",
        "source",
        "event_id",
        "type",
        "occurred_at",
        "status",
        "attempts",
    ]
    list_filter = ["status", "type", "source"]
    search_fields = ["event_id", "member__external_id", "correlation_id"]
    date_hierarchy = "received_at"
    list_select_related = ["tenant", "member"]
    actions = ["replay"]
    readonly_fields = ["pretty_result"]
    fields = [
        "member",
        "source",
        "event_id",
        "type",
        "occurred_at",
        "received_at",
        "amount",
        "currency",
        "quantities",
        "qualifying",
        "refund_of",
        "status",
        "attempts",
        "last_error",
        "processed_at",
        "pretty_result",
    ]

    @admin.display(description="result")
    def pretty_result(self, obj: MemberEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, default=str))

    @admin.action(description="Replay selected failed or dead events")
    def replay(self, request: HttpRequest, queryset: Any) -> None:
        replayable = queryset.filter(status__in=[MemberEvent.Status.FAILED, MemberEvent.Status.DEAD])
        count = 0
        for event in replayable.select_related("tenant", "member"):
            replay_event(tenant=event.tenant, event=event, actor=request.user)
            count += 1
        self.message_user(request, f"{count} event(s) queued for evaluation; others were not failed or dead.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # "replay" needs only view permission (it goes through the service and is audited).
        actions = super().get_actions(request)
        return {"replay": actions["replay"]} if "replay" in actions else actions


# The other admin modules of this app register their pages on import (Django autodiscovers admin.py only).
from events import admin_integrations, admin_members  # noqa: E402, F401 - Notification admin; member pages

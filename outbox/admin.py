"""The portal for the outbox (DOMAIN §8): webhook subscriptions (saved through ``outbox.services``:
validated, audited, secrets generated and rotated there and shown once), the outbox with each message's
deliveries (read-only; dead ones replayable), and deliveries (read-only; "retry now"). Every page is
limited to the staff user's tenants.
"""

import json
from collections import defaultdict
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from outbox import services as subscriptions
from outbox.models import MESSAGE_TYPES, Delivery, OutboxMessage, WebhookSubscription
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin, TenantScopedMixin
from tenancy.service_admin import REFUSALS, ServiceAdmin, ServiceForm, error_messages


def _refusal_text(exc: Any) -> str:
    return " ".join(m for msgs in error_messages(exc).values() for m in msgs)


# --- webhook subscriptions ------------------------------------------------------------------------
class WebhookSubscriptionForm(ServiceForm):
    """Message types as checkboxes (none ticked = every type); the secrets are never in the form."""

    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="http(s), public addresses only.")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in MESSAGE_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked = every message type.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ["tenant", "url", "description", "event_types", "active"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceAdmin):
    """Saves go through ``save_subscription`` (SSRF guard on the URL, known types, audited); a new
    subscription's secret, and a rotated one, is shown once in a message and never again."""

    form = WebhookSubscriptionForm
    list_display = ["url", "types", "active", "disabled_reason", "rotation_until"]
    list_filter = ["active"]
    search_fields = ["url", "description"]
    list_select_related = ["tenant"]
    actions = ["rotate_secret"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["tenant", "url", "description", "event_types", "active"]
        return [*fields, "disabled_reason", "rotation_until", "created_at", "updated_at"] if obj else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "disabled_reason", "rotation_until", "created_at", "updated_at"] if obj else []

    @admin.display(description="message types")
    def types(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.event_types) if obj.event_types else "every type"

    @admin.display(description="previous secret signs until")
    def rotation_until(self, obj: WebhookSubscription) -> Any:
        return obj.previous_secret_expires_at if obj.previous_secret else None

    def save_service(self, request: HttpRequest, obj: WebhookSubscription) -> None:
        subscriptions.save_subscription(tenant=obj.tenant, subscription=obj, actor=request.user)

    def delete_service(self, request: HttpRequest, obj: WebhookSubscription) -> None:
        subscriptions.delete_subscription(tenant=obj.tenant, subscription=obj, actor=request.user)

    def response_add(
        self, request: HttpRequest, obj: WebhookSubscription, post_url_continue: Any = None
    ) -> HttpResponse:
        self._show_secret(request, obj, "Its signing secret")
        return super().response_add(request, obj, post_url_continue)

    def _show_secret(self, request: HttpRequest, obj: WebhookSubscription, what: str) -> None:
        self.message_user(
            request,
            f"{what} for {obj.url}: {obj.secret} — copy it now, it is not shown again.",
            messages.WARNING,
        )

    @admin.action(description="Rotate the signing secret (the old one signs too for 24 hours)", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset.select_related("tenant").order_by("pk"):
            try:
                rotated = subscriptions.rotate_secret(
                    tenant=subscription.tenant, subscription=subscription, actor=request.user
                )
            except REFUSALS as exc:
                self.message_user(request, f"{subscription.url}: {_refusal_text(exc)}", messages.ERROR)
            else:
                self._show_secret(request, rotated, "New signing secret")


# --- the outbox -----------------------------------------------------------------------------------
DELIVERY_FIELDS = [
    "destination",
    "subscription",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
]


class DeliveryInline(ReadOnlyAdminMixin, TenantScopedMixin, admin.TabularInline):
    """A message's deliveries, one per destination, as the relay left them."""

    model = Delivery
    extra = 0
    can_delete = False
    show_change_link = True
    fields = tuple(DELIVERY_FIELDS)
    readonly_fields = tuple(DELIVERY_FIELDS)
    ordering = ["id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("subscription")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Outbox messages as written; delivery state is the relay's. Dead deliveries can be replayed
    (``outbox.services.replay_message``, audited)."""

    list_display = ["created_at", "tenant", "type", "member_id", "sequence", "status", "delivered_at"]
    list_filter = ["status", "type"]
    search_fields = ["member_id", "correlation_id", "=id"]
    date_hierarchy = "created_at"
    readonly_fields = ["pretty_envelope"]
    fields = ["pretty_envelope", "status", "delivered_at"]
    inlines = [DeliveryInline]
    actions = ["replay_dead"]

    @admin.display(description="message")
    def pretty_envelope(self, obj: OutboxMessage) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.envelope(), indent=2, default=str))

    @admin.action(description="Replay dead deliveries of the selected messages")
    def replay_dead(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        replayed, messages_replayed, skipped = 0, 0, 0
        for message in queryset.select_related("tenant").order_by("created_at"):
            try:
                count = subscriptions.replay_dead_deliveries(tenant=message.tenant, message=message, actor=request.user)
            except subscriptions.NothingToReplay:
                skipped += 1
            else:
                replayed += count
                messages_replayed += 1
        self.message_user(
            request,
            f"{replayed} dead deliveries of {messages_replayed} message(s) are due again; "
            f"{skipped} message(s) had none dead.",
            messages.SUCCESS if replayed else messages.WARNING,
        )


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every delivery of every message; pending and dead ones can be made due now."""

    list_display = ["created_at", "message", "destination", "subscription", "status", "attempts", "next_attempt_at"]
    list_filter = ["destination", "status"]
    search_fields = ["=message__id", "message__member_id"]
    list_select_related = ["tenant", "message", "subscription"]
    date_hierarchy = "created_at"
    fields = ("message", *DELIVERY_FIELDS, "created_at")
    readonly_fields = ("message", *DELIVERY_FIELDS, "created_at")
    actions = ["retry_now"]

    @admin.action(description="Retry the selected pending or dead deliveries now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        by_tenant: dict[Any, list[Delivery]] = defaultdict(list)
        for delivery in queryset.select_related("tenant"):
            by_tenant[delivery.tenant].append(delivery)
        selected = sum(len(d) for d in by_tenant.values())
        retried = sum(
            subscriptions.retry_deliveries(tenant=tenant, deliveries=deliveries, actor=request.user)
            for tenant, deliveries in by_tenant.items()
        )
        self.message_user(
            request,
            f"{retried} of {selected} selected deliveries are due now; the others were already delivered.",
            messages.SUCCESS if retried else messages.WARNING,
        )

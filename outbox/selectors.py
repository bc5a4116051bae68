"""Reads of the outbox, always within one tenant."""

from django.db.models import Prefetch, QuerySet

from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from tenancy.models import Tenant


def webhook_subscriptions(*, tenant: Tenant) -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.filter(tenant=tenant).order_by("id")


def outbox_messages(*, tenant: Tenant) -> QuerySet[OutboxMessage]:
    """The tenant's outbox, newest first."""
    return OutboxMessage.objects.filter(tenant=tenant).order_by("-created_at", "-sequence", "-id")


def outbox_messages_with_deliveries(*, tenant: Tenant) -> QuerySet[OutboxMessage]:
    return outbox_messages(tenant=tenant).prefetch_related(
        Prefetch("deliveries", queryset=Delivery.objects.order_by("id"))
    )

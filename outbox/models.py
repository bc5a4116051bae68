"""The transactional outbox (DOMAIN §8): messages written in the same transaction as the change they
announce, webhook subscriptions, and one delivery per message and destination, made at least once by the
relay (``outbox.relay``).

The tables keep the names they had when these models lived in ``events`` (``events_outboxmessage``…):
the move changed only where the code lives (migration ``outbox.0001``)."""

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenancy.history import tracked
from tenancy.models import Tenant

# DOMAIN.md §8: the messages this service emits.
MESSAGE_TYPES = (
    "member.created",
    "member.erased",
    "tier.changed",
    "benefit.applied",
    "benefit.revoked",
    "benefit.expired",
    "benefit.used",
    "points.applied",
    "points.reverted",
    "points.adjusted",
    "event_code.redeemed",
    "notification.requested",
)


class OutboxMessage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending (not yet fanned out)"
        DISPATCHED = "dispatched", "dispatched (deliveries under way)"
        DELIVERED = "delivered"
        DEAD = "dead", "dead (a delivery gave up; replayable)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    type = models.CharField(max_length=64)
    member_id = models.CharField(max_length=200, blank=True, help_text="The member's external id.")
    sequence = models.PositiveBigIntegerField(help_text="Per (tenant, member) order, starting at 1.")
    correlation_id = models.CharField(max_length=128, blank=True)
    data = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    occurred_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_outboxmessage"
        ordering = ["created_at", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "member_id", "sequence"], name="uniq_outbox_member_sequence")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.type} #{self.sequence} {self.member_id}"

    def envelope(self) -> dict:
        """The message as receivers see it (webhook body, broker payload)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "tenant": self.tenant.slug,
            "member_id": self.member_id,
            "occurred_at": self.occurred_at.isoformat(),
            "sequence": self.sequence,
            "correlation_id": self.correlation_id,
            "data": self.data,
        }


class MemberSequence(models.Model):
    """The last outbox sequence number used per (tenant, member); ``member_id`` "" is the tenant's own
    stream. Incremented with an atomic upsert (see ``outbox.emit.next_sequence``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    member_id = models.CharField(max_length=200, blank=True)
    last_value = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "events_membersequence"
        constraints = [models.UniqueConstraint(fields=["tenant", "member_id"], name="uniq_member_sequence")]

    def __str__(self) -> str:
        return f"{self.member_id or '(tenant)'}: {self.last_value}"


class WebhookSubscription(models.Model):
    """A tenant's webhook endpoint (DOMAIN §8): the messages of ``event_types`` (all when empty) are
    POSTed to ``url``, signed per the Standard Webhooks spec with ``secret`` (and, during a rotation,
    also with ``previous_secret`` until ``previous_secret_expires_at``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Message types; empty = every type.")
    secret = models.CharField(max_length=100, help_text="whsec_ + base64 of the signing key.")
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded_fields=["secret", "previous_secret"], table_name="events_historicalwebhooksubscription")

    class Meta:
        db_table = "events_webhooksubscription"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, message_type: str) -> bool:
        return self.active and (not self.event_types or message_type in self.event_types)


class Delivery(models.Model):
    """One outbox message to one destination, retried on its own schedule until delivered or dead.
    Unique per message and subscription (webhooks) or destination (the others), so fanning a message
    out twice adds nothing."""

    class Destination(models.TextChoices):
        WEBHOOK = "webhook"
        BROKER = "broker", "message broker"
        IAM = "iam", "IAM"
        POINT_SERVICE = "point_service", "Point Service"
        NOTIFICATION = "notification", "Notification service"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead", "dead (replayable)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.CharField(max_length=16, choices=Destination.choices)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_delivery"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["message", "subscription"],
                condition=Q(subscription__isnull=False),
                name="uniq_webhook_delivery",
            ),
            models.UniqueConstraint(
                fields=["message", "destination"], condition=Q(subscription__isnull=True), name="uniq_service_delivery"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.message_id} → {self.destination} ({self.status})"

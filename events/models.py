"""The transactional outbox: messages written in the same transaction as the change they announce,
delivered later (at least once) by the relay."""

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tenancy.models import Tenant

# DOMAIN.md §8: the messages this service emits.
MESSAGE_TYPES = (
    "member.created",
    "tier.changed",
    "benefit.applied",
    "benefit.revoked",
    "benefit.expired",
    "points.applied",
    "points.reverted",
    "points.adjusted",
    "event_code.redeemed",
)


class OutboxMessage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead"

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
    stream. Incremented with an atomic upsert (see ``events.services.next_sequence``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    member_id = models.CharField(max_length=200, blank=True)
    last_value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "member_id"], name="uniq_member_sequence")]

    def __str__(self) -> str:
        return f"{self.member_id or '(tenant)'}: {self.last_value}"

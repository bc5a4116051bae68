"""Notifications to members. Member events and their metrics live in ``members.models``, the outbox in
``outbox.models``."""

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tenancy.models import Tenant


class Notification(models.Model):
    """A message to a member through the Notification service (``POST /notification/send``): stored
    with a ``notification.requested`` outbox message in one transaction, then delivered by the relay
    (``integrations``), which records the provider's id and answer here. ``skipped`` when no
    Notification service is configured. The id is the provider's ``Idempotency-Key``."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        SMS = "sms"
        PUSH = "push"

    class Status(models.TextChoices):
        REQUESTED = "requested", "requested (being sent)"
        SENT = "sent", "sent (accepted by the provider)"
        DELIVERED = "delivered", "delivered (the provider confirmed it)"
        FAILED = "failed", "failed (retries exhausted or refused; replayable)"
        SKIPPED = "skipped", "skipped (no Notification service configured)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="notifications")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    template = models.CharField(max_length=100)
    data = models.JSONField(encoder=DjangoJSONEncoder, default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    external_id = models.CharField(max_length=200, blank=True, help_text="The provider's id for it.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["member", "-created_at"], name="notification_member_created")]

    def __str__(self) -> str:
        return f"{self.template} → {self.member_id} by {self.channel} ({self.status})"

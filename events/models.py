"""Member events (DOMAIN §7), their daily metric aggregates, and notifications to members. The outbox
models live in ``outbox.models``."""

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tenancy.models import Tenant

EVENT_TYPES = ("transaction", "mission", "campaign", "promo", "engagement", "refund", "custom")


class MemberEvent(models.Model):
    """An event a caller reported about a member (DOMAIN §7): the source of truth for metrics.

    Idempotent on (tenant, ``source``, ``event_id``); ``body_hash`` tells a replay from a conflicting
    reuse of the key. ``counted`` records whether its contributions were added to the member's daily
    metrics (not for a suspended member or a rejected event), so a rebuild sums exactly those.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        FAILED = "failed", "failed (will be retried)"
        DEAD = "dead", "dead (retries exhausted; replayable)"
        REJECTED = "rejected", "rejected (too old)"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="events")
    source = models.CharField(max_length=64)
    event_id = models.CharField(max_length=200)
    type = models.CharField(max_length=20)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    product = models.CharField(max_length=64, blank=True)
    partner = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=64, blank=True)
    campaign_code = models.CharField(max_length=64, blank=True)
    quantities = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    attributes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    qualifying = models.BooleanField(default=True)
    refund_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    refunded_amount = models.DecimalField(
        max_digits=14, decimal_places=2, default=0, help_text="Refunded so far (on an original event)."
    )
    body_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    counted = models.BooleanField(default=False, help_text="Its contributions are in the daily metrics.")
    response_status = models.PositiveSmallIntegerField(default=201)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "source", "event_id"], name="uniq_event_idempotency_key")
        ]
        indexes = [
            models.Index(fields=["member", "occurred_at"], name="event_member_occurred"),
            models.Index(fields=["status", "received_at"], name="event_status_received"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.event_id}"

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.event_id}"

    def result_body(self) -> dict | None:
        """The stored result with the event's id, as the API returns it."""
        return None if self.result is None else {"id": self.pk, **self.result}


class MetricDay(models.Model):
    """One member's total of one metric on one local day (tenant time): the aggregates that make any
    window a small sum. ``value`` is scaled by 10,000 (exact integers on every database)."""

    SCALE = 10_000

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="metric_days")
    day = models.DateField()
    metric = models.CharField(max_length=80)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "day", "metric"], name="uniq_metric_day")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.day} {self.metric}={self.value / self.SCALE}"


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

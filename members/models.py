"""Member profiles (DOMAIN §2), the events reported about members (DOMAIN §7) and their daily metric
aggregates. ``external_id`` is the IAM subject and the ``{memberId}`` of every URL.

``MemberEvent`` and ``MetricDay`` moved here from ``events`` (their tables keep the ``events_*`` names;
migration ``members.0003``): points, benefits and tiers read them, and ``events`` sits above all three."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tenancy.history import tracked
from tenancy.models import Tenant


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended", "suspended: events stored, nothing earned, no tier movement"
        ERASED = "erased", "erased: personal data blanked (GDPR/PDPA)"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="members")
    external_id = models.CharField(max_length=200, help_text="The IAM subject; unique per tenant.")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    mobile = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +66812345678.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    attributes = models.JSONField(default=dict, blank=True, help_text="Attributes from the IAM, used by criteria.")
    registered_at = models.DateTimeField(default=timezone.now)
    iam_linked = models.BooleanField(default=False)
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="occurred_at of the latest counted event.")
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded_fields=["last_event_at", "updated_at"])

    class Meta:
        ordering = ["-registered_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="uniq_member_external_id")]
        indexes = [models.Index(fields=["tenant", "status"], name="member_tenant_status")]

    def __str__(self) -> str:
        return self.external_id


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
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="events")
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
        db_table = "events_memberevent"
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
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="metric_days")
    day = models.DateField()
    metric = models.CharField(max_length=80)
    value = models.BigIntegerField(default=0)

    class Meta:
        db_table = "events_metricday"
        constraints = [models.UniqueConstraint(fields=["member", "day", "metric"], name="uniq_metric_day")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.day} {self.metric}={self.value / self.SCALE}"

"""A reconciliation run (DOMAIN §10): what the service proved about its own state, and what it
repaired. One discrepancy row per finding, with a stable ``code``."""

from django.db import models
from django.db.models import Q

from tenancy.models import Tenant

CHECKS = ("points", "tiers", "benefits", "sync", "outbox")


class ReconciliationRun(models.Model):
    """One pass over a tenant's members (all, or the named ones), cut into :class:`ReconciliationChunk`
    of members that workers process in parallel; a chunk done is never done again, so a run whose worker
    died resumes with the chunks left."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    fix = models.BooleanField(default=False, help_text="Repair what is found (otherwise only report it).")
    checks = models.JSONField(default=list, help_text="Which checks run: points, tiers, benefits, sync, outbox.")
    member_ids = models.JSONField(null=True, blank=True, help_text="Only these members (external ids); empty = all.")
    members_total = models.PositiveIntegerField(default=0)
    members_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    fixed = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(status__in=["queued", "running"]), name="one_active_reconciliation"
            )
        ]

    def __str__(self) -> str:
        mode = "repair" if self.fix else "check"
        return f"{mode} of {self.created_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class ReconciliationChunk(models.Model):
    """Members ``first_member``..``last_member`` (pks) of a run: one task, one transaction."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="chunks")
    first_member = models.BigIntegerField()
    last_member = models.BigIntegerField()
    members = models.PositiveIntegerField(default=0)
    done = models.BooleanField(default=False)

    class Meta:
        ordering = ["first_member"]

    def __str__(self) -> str:
        return f"members {self.first_member}–{self.last_member}"


class Discrepancy(models.Model):
    """One thing found wrong: ``expected`` is what the event log and the configuration say, ``actual``
    what is stored. ``subject`` names the row in question in the member's terms (an event id, a tier
    type, a benefit code, a delivery)."""

    class Kind(models.TextChoices):
        POINTS = "points"
        TIERS = "tiers"
        BENEFITS = "benefits"
        SYNC = "sync"
        OUTBOX = "outbox"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies")
    member_id = models.CharField(max_length=200, blank=True, help_text="The member's external id.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    code = models.CharField(max_length=32)
    subject = models.CharField(max_length=300, blank=True)
    expected = models.JSONField(null=True, blank=True)
    actual = models.JSONField(null=True, blank=True)
    fixed = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "discrepancies"
        indexes = [models.Index(fields=["run", "kind", "code"], name="discrepancy_run_kind")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.code} {self.subject}"

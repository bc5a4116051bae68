"""Simulation (DOMAIN §9): scenarios of draft configuration, and program-wide backtests run over the
stored event log by the replay kernel (``simulation.kernel``) in member-range chunks."""

from django.db import models

from points.models import PointConversionRule, PointModifier
from tenancy.models import Tenant
from tiers.models import PromotionRule, Tier, TierType


class Scenario(models.Model):
    """A named set of draft changes: draft rules and modifiers included, active ones excluded, tier
    point multipliers overridden. Evaluated without touching live configuration; ``publish`` makes it
    live. ``fingerprint`` records what every object it names looked like when it was saved, so a
    publish can tell that one changed since (stale)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    include_promotion_rules = models.ManyToManyField(PromotionRule, blank=True, related_name="+")
    exclude_promotion_rules = models.ManyToManyField(PromotionRule, blank=True, related_name="+")
    include_point_rules = models.ManyToManyField(PointConversionRule, blank=True, related_name="+")
    exclude_point_rules = models.ManyToManyField(PointConversionRule, blank=True, related_name="+")
    include_modifiers = models.ManyToManyField(PointModifier, blank=True, related_name="+")
    exclude_modifiers = models.ManyToManyField(PointModifier, blank=True, related_name="+")
    fingerprint = models.JSONField(default=dict, blank=True, editable=False)
    created_by = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="scenario_code_per_tenant")]

    def __str__(self) -> str:
        return self.name or self.code


class ScenarioTierOverride(models.Model):
    """A tier's point multiplier as the scenario would have it."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="tier_overrides")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="+")
    point_multiplier = models.DecimalField(max_digits=6, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scenario", "tier"], name="scenario_override_per_tier")]

    def __str__(self) -> str:
        return f"{self.tier} × {self.point_multiplier}"


class SimulationRun(models.Model):
    """One program backtest: baseline (active configuration) against a scenario over the events that
    occurred in [``starts``, ``ends``], all members or a sample, split into member-range chunks."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    scenario = models.ForeignKey(Scenario, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    starts = models.DateField()
    ends = models.DateField()
    sample = models.PositiveIntegerField(null=True, blank=True, help_text="At most this many members; empty = all.")
    tier_type = models.ForeignKey(TierType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    members_total = models.PositiveIntegerField(default=0)
    members_done = models.PositiveIntegerField(default=0)
    events = models.PositiveBigIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"simulation {self.starts} to {self.ends} ({self.get_status_display()})"


class SimulationChunk(models.Model):
    """A contiguous range of member ids of one run, evaluated by one task; ``partial`` holds its
    mergeable share of the result once done."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(SimulationRun, on_delete=models.CASCADE, related_name="chunks")
    first_member = models.BigIntegerField()
    last_member = models.BigIntegerField()
    members = models.PositiveIntegerField(default=0)
    done = models.BooleanField(default=False)
    partial = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["first_member"]

    def __str__(self) -> str:
        return f"members {self.first_member}–{self.last_member}"


class AffectedMember(models.Model):
    """A member whose tier or points differ between baseline and scenario in a run."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(SimulationRun, on_delete=models.CASCADE, related_name="affected")
    member_id = models.CharField(max_length=200, help_text="The member's external id.")
    tier_type = models.CharField(max_length=64, blank=True)
    baseline = models.CharField(max_length=64, blank=True)
    scenario = models.CharField(max_length=64, blank=True)
    points_delta = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"], name="affected_run_id")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.baseline} → {self.scenario}"

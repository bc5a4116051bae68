"""Tier ladders (tier types), their tiers, promotion/demotion rules, and members' tier assignments.

Semantics: DOMAIN.md §3. Validation that needs only the row lives in ``clean()``; rules that span rows
(one default per tier type, protected deletes) live in ``tiers.services``.
"""

from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from tenancy.history import tracked
from tenancy.models import Tenant
from tiers.criteria import CriteriaError, normalize_criteria, summarize_criterion

SLUG_HELP = "Letters, digits, '-' and '_'; unique per tenant."


class TierType(models.Model):
    """One ladder, e.g. "Hotel status" or "Partner X card level" (DOMAIN §3.1)."""

    class Mode(models.TextChoices):
        DYNAMIC = "dynamic", "dynamic: automatic promotion and demotion"
        HYBRID = "hybrid", "hybrid: automatic promotion, demotion when validity ends"
        FIXED = "fixed", "fixed: changes only by admin, invitation or event code"

    class Qualification(models.TextChoices):
        ROLLING = "rolling", "rolling window of window_days"
        CALENDAR_YEAR = "calendar_year", "calendar year"
        CALENDAR_MONTH = "calendar_month", "calendar month"
        ANNIVERSARY = "anniversary", "yearly from enrollment in this tier type"
        LIFETIME = "lifetime", "lifetime"

    class Validity(models.TextChoices):
        WHILE_QUALIFIED = "while_qualified", "while qualified"
        END_OF_PERIOD = "end_of_period", "to the end of the qualifying period"
        END_OF_NEXT_PERIOD = "end_of_next_period", "to the end of the period after"
        FIXED_DAYS = "fixed_days", "validity_days after qualifying"
        INDEFINITE = "indefinite", "indefinitely"

    class DemotionStep(models.TextChoices):
        TO_QUALIFIED = "to_qualified", "straight to the entitled tier"
        ONE_TIER = "one_tier", "one rank at a time"

    # DOMAIN §3.4 "Allowed pairs".
    ALLOWED_VALIDITY = {
        Qualification.ROLLING: {Validity.WHILE_QUALIFIED, Validity.FIXED_DAYS},
        Qualification.CALENDAR_YEAR: set(Validity) - {Validity.WHILE_QUALIFIED},
        Qualification.CALENDAR_MONTH: set(Validity) - {Validity.WHILE_QUALIFIED},
        Qualification.ANNIVERSARY: set(Validity) - {Validity.WHILE_QUALIFIED},
        Qualification.LIFETIME: {Validity.INDEFINITE},
    }

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tier_types")
    code = models.SlugField(max_length=64, help_text=SLUG_HELP)
    name = models.CharField(max_length=200)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.HYBRID)
    qualification = models.CharField(max_length=20, choices=Qualification.choices, default=Qualification.CALENDAR_YEAR)
    window_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3660)],
        help_text="Rolling qualification only: the window length in days.",
    )
    validity = models.CharField(max_length=20, choices=Validity.choices, default=Validity.END_OF_NEXT_PERIOD)
    validity_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3660)],
        help_text="fixed_days validity only: how long a claim lasts.",
    )
    grace_days = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(3660)])
    demotion_step = models.CharField(max_length=16, choices=DemotionStep.choices, default=DemotionStep.TO_QUALIFIED)
    product = models.SlugField(max_length=64, blank=True, help_text="Blank = any product.")
    partner = models.SlugField(max_length=64, blank=True, help_text="Blank = any partner.")
    priority = models.IntegerField(default=0, help_text="Orders tier types when their benefits conflict.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked()

    class Meta:
        ordering = ["-priority", "code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_tiertype_code")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.qualification == self.Qualification.ROLLING and not self.window_days:
            errors["window_days"] = "Required for rolling qualification."
        if self.qualification != self.Qualification.ROLLING and self.window_days:
            errors["window_days"] = "Only rolling qualification has a window; leave it empty."
        if self.validity == self.Validity.FIXED_DAYS and not self.validity_days:
            errors["validity_days"] = "Required for fixed_days validity."
        if self.validity != self.Validity.FIXED_DAYS and self.validity_days:
            errors["validity_days"] = "Only fixed_days validity uses validity_days; leave it empty."
        allowed: set[str] = set(self.ALLOWED_VALIDITY.get(self.Qualification(self.qualification), ()))
        if self.validity not in allowed and "validity" not in errors:
            errors["validity"] = (
                f"{self.qualification} qualification goes with "
                f"{', '.join(sorted(str(v) for v in allowed))}, not {self.validity}."
            )
        if errors:
            raise ValidationError(errors)


class Tier(models.Model):
    """A rung of a ladder (DOMAIN §3.2). Rank 1 is the lowest."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tier_type = models.ForeignKey(TierType, on_delete=models.CASCADE, related_name="tiers")
    code = models.SlugField(max_length=64, help_text="Letters, digits, '-' and '_'; unique within the tier type.")
    name = models.CharField(max_length=200)
    rank = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="1 is the lowest.")
    is_default = models.BooleanField(default=False, help_text="Entry tier at registration and floor of demotion.")
    climbable = models.BooleanField(default=True, help_text="Automatic evaluation may move members into it.")
    immutable = models.BooleanField(default=False, help_text="Members in it are never moved automatically.")
    point_multiplier = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("1.00"), validators=[MinValueValidator(Decimal("0"))]
    )
    available_from = models.DateTimeField(null=True, blank=True, help_text="Time-bound tier: assignable from.")
    available_until = models.DateTimeField(null=True, blank=True, help_text="Time-bound tier: assignments end.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked()

    class Meta:
        ordering = ["tier_type_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "tier_type", "code"], name="uniq_tier_code"),
            models.UniqueConstraint(fields=["tenant", "tier_type", "rank"], name="uniq_tier_rank"),
            models.UniqueConstraint(
                fields=["tier_type"], condition=Q(is_default=True), name="uniq_default_tier_per_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.tier_type.code} #{self.rank})" if self.tier_type_id else self.name

    def clean(self) -> None:
        if self.available_from and self.available_until and self.available_from >= self.available_until:
            raise ValidationError({"available_until": "Must be after available_from."})
        if self.tier_type_id and self.tenant_id and self.tier_type.tenant_id != self.tenant_id:
            raise ValidationError({"tier_type": "Belongs to another tenant."})

    def is_available(self, at: datetime) -> bool:
        """Whether the tier can be assigned at that instant (time-bound tiers, DOMAIN §3.2)."""
        return (self.available_from is None or self.available_from <= at) and (
            self.available_until is None or at < self.available_until
        )


class PromotionRule(models.Model):
    """When a member qualifies for (or is demoted to) a tier (DOMAIN §3.3)."""

    class Direction(models.TextChoices):
        PROMOTION = "promotion"
        DEMOTION = "demotion"

    class Combinator(models.TextChoices):
        ALL = "all", "all criteria (AND)"
        ANY = "any", "any criterion (OR)"

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        ARCHIVED = "archived"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    code = models.SlugField(max_length=64, help_text=SLUG_HELP)
    name = models.CharField(max_length=200, blank=True)
    tier_type = models.ForeignKey(TierType, on_delete=models.PROTECT, related_name="rules")
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.PROMOTION)
    target_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rules",
        help_text="Required for promotion; for demotion, empty = one tier down.",
    )
    combinator = models.CharField(max_length=8, choices=Combinator.choices, default=Combinator.ANY)
    criteria = models.JSONField(default=list, help_text="A list of {metric, operator, value, window_days}.")
    priority = models.IntegerField(default=0, help_text="Higher first; ties broken by id.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    effective_from = models.DateTimeField(null=True, blank=True)
    effective_until = models.DateTimeField(null=True, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked()

    class Meta:
        ordering = ["tier_type_id", "direction", "-priority", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_promotionrule_code")]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            self.criteria = normalize_criteria(self.criteria)
        except CriteriaError as exc:
            errors["criteria"] = exc.messages
        if self.direction == self.Direction.PROMOTION and not self.target_tier_id:
            errors["target_tier"] = ["A promotion rule needs a target tier."]
        target = self.target_tier if self.target_tier_id else None
        if target is not None and self.tier_type_id and target.tier_type_id != self.tier_type_id:
            errors["target_tier"] = ["The target tier belongs to another tier type."]
        if self.tier_type_id and self.tenant_id and self.tier_type.tenant_id != self.tenant_id:
            errors["tier_type"] = ["Belongs to another tenant."]
        if self.effective_from and self.effective_until and self.effective_from >= self.effective_until:
            errors["effective_until"] = ["Must be after effective_from."]
        if errors:
            raise ValidationError(errors)

    def summary(self) -> str:
        """'Gold if nights ≥ 25 OR stays ≥ 15 in calendar year' (the admin list's reading)."""
        joiner = " AND " if self.combinator == self.Combinator.ALL else " OR "
        try:
            conditions = joiner.join(summarize_criterion(c) for c in normalize_criteria(self.criteria))
        except CriteriaError:
            conditions = "(invalid criteria)"
        tier = self.target_tier if self.target_tier_id else None
        if self.direction == self.Direction.PROMOTION:
            target = tier.name if tier else "?"
        else:
            target = f"Down to {tier.name}" if tier else "Down one tier"
        window = self.tier_type.get_qualification_display() if self.tier_type_id else ""
        if self.tier_type_id and self.tier_type.qualification == TierType.Qualification.ROLLING:
            window = f"the last {self.tier_type.window_days} days"
        return f"{target} if {conditions} in {window}"


class AssignmentSource(models.TextChoices):
    """Why a member's tier changed (DOMAIN §3.4)."""

    AUTO = "auto"
    MANUAL = "manual"
    INVITATION = "invitation"
    EVENT_CODE = "event_code"
    REVIEW = "review"
    ROLLBACK = "rollback"
    RECONCILIATION = "reconciliation"


class MemberTierAssignment(models.Model):
    """The tier a member holds in one tier type now; at most one per (member, tier type)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="tier_assignments")
    tier_type = models.ForeignKey(TierType, on_delete=models.PROTECT, related_name="assignments")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="assignments")
    source = models.CharField(max_length=16, choices=AssignmentSource.choices, default=AssignmentSource.AUTO)
    rule = models.ForeignKey(PromotionRule, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    since = models.DateTimeField(help_text="When the member entered this tier.")
    enrolled_at = models.DateTimeField(help_text="When the member entered this tier type (anniversary windows).")
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Latest claim end on this tier or higher.")
    lock_until = models.DateTimeField(null=True, blank=True, help_text="No automatic movement before this.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Manual change ends; back to entitled tier.")
    granted_claims = models.JSONField(
        default=list, blank=True, help_text="Claims not derived from activity: manual grants and soft landings."
    )
    claims_void_before = models.DateTimeField(
        null=True, blank=True, help_text="A demotion rule fired: activity before this earns nothing."
    )
    last_rule_demotion_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked()

    class Meta:
        ordering = ["member_id", "-tier_type__priority", "tier_type_id"]
        constraints = [
            models.UniqueConstraint(fields=["member", "tier_type"], name="uniq_member_tier_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.tier}"


class MemberTierChange(models.Model):
    """One change of a member's tier in one tier type: the domain history (DOMAIN §3.4, last line).

    ``from_tier`` is empty on first assignment, ``to_tier`` empty when the assignment was removed.
    Written only by ``tiers.assignments``; never edited.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="tier_changes")
    tier_type = models.ForeignKey(TierType, on_delete=models.PROTECT, related_name="+")
    from_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    source = models.CharField(max_length=16, choices=AssignmentSource.choices)
    reason = models.TextField(blank=True)
    rule = models.ForeignKey(PromotionRule, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    event_ref = models.CharField(
        max_length=300, blank=True, help_text="The member event that caused it ('source:event_id'), if any."
    )
    actor = models.CharField(max_length=200)
    at = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    lock_until = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    reverts = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reverted_by",
        help_text="The change this rollback undid (source 'rollback').",
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["tenant", "member", "-at"], name="tierchange_member_at")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} → {self.to_tier_id} ({self.source})"


class TierReview(models.Model):
    """One tenant's periodic review for one local day: a cursor that makes the run resumable."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run_date = models.DateField()
    last_member_pk = models.BigIntegerField(default=0)
    members_reviewed = models.PositiveIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-run_date", "tenant_id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "run_date"], name="uniq_tier_review_per_day")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.run_date}"

"""Point conversion rules, campaign modifiers, the tenant point policy (DOMAIN §4), and the ledger:
point transactions and the cap buckets that keep their totals."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models

from members.models import EVENT_TYPES
from tenancy.history import tracked
from tenancy.models import Tenant

CODE_HELP = "Letters, digits, '-' and '_'; unique per tenant."


class ConfigStatus(models.TextChoices):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


def _event_types_errors(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return ["A list of event types."]
    unknown = sorted(set(value) - set(EVENT_TYPES))
    return [f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}."] if unknown else []


class PointConversionRule(models.Model):
    """How an event converts to points (DOMAIN §4.1)."""

    class Base(models.TextChoices):
        PER_AMOUNT = "per_amount", "per amount: floor(amount / unit_amount) × points_per_unit"
        PER_EVENT = "per_event", "per event: points_per_unit"
        PER_QUANTITY = "per_quantity", "per quantity: quantities[quantity_name] × points_per_unit"

    class Rounding(models.TextChoices):
        DOWN = "down"
        HALF_UP = "half_up"
        UP = "up"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    code = models.SlugField(max_length=64, help_text=CODE_HELP)
    name = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty = every event type.")
    product = models.SlugField(max_length=64, blank=True)
    partner = models.SlugField(max_length=64, blank=True)
    source = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=64, blank=True)
    base = models.CharField(max_length=16, choices=Base.choices, default=Base.PER_AMOUNT)
    unit_amount = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))]
    )
    points_per_unit = models.PositiveIntegerField(default=1)
    quantity_name = models.SlugField(max_length=64, blank=True)
    tier_type = models.ForeignKey(
        "tiers.TierType",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Whose tier multiplier applies; empty = none.",
    )
    group = models.SlugField(max_length=64, default="base", help_text="One rule per group applies.")
    priority = models.IntegerField(default=0)
    rounding = models.CharField(max_length=8, choices=Rounding.choices, default=Rounding.DOWN)
    min_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    cap_per_event = models.PositiveIntegerField(null=True, blank=True)
    cap_per_day = models.PositiveIntegerField(null=True, blank=True)
    cap_per_week = models.PositiveIntegerField(null=True, blank=True)
    cap_per_month = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ConfigStatus.choices, default=ConfigStatus.ACTIVE)
    effective_from = models.DateTimeField(null=True, blank=True)
    effective_until = models.DateTimeField(null=True, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked()

    class Meta:
        ordering = ["group", "-priority", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_conversion_rule_code")]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if problems := _event_types_errors(self.event_types):
            errors["event_types"] = problems
        if self.base == self.Base.PER_AMOUNT and not self.unit_amount:
            errors["unit_amount"] = ["Required for per_amount."]
        if self.base == self.Base.PER_QUANTITY and not self.quantity_name:
            errors["quantity_name"] = ["Required for per_quantity."]
        tier_type = self.tier_type if self.tier_type_id else None
        if tier_type is not None and self.tenant_id and tier_type.tenant_id != self.tenant_id:
            errors["tier_type"] = ["Belongs to another tenant."]
        if self.effective_from and self.effective_until and self.effective_from >= self.effective_until:
            errors["effective_until"] = ["Must be after effective_from."]
        if errors:
            raise ValidationError(errors)

    def summary(self) -> str:
        """'10 pts per 1.00 × tier multiplier, cap 75,000 per event' (the admin list's reading)."""
        if self.base == self.Base.PER_AMOUNT:
            text = f"{self.points_per_unit:,} pts per {self.unit_amount}"
        elif self.base == self.Base.PER_EVENT:
            text = f"{self.points_per_unit:,} pts per event"
        else:
            text = f"{self.points_per_unit:,} pts per {self.quantity_name or '?'}"
        if self.tier_type_id:
            text += " × tier multiplier"
        caps = [
            f"cap {cap:,} per {period}"
            for period in ("event", "day", "week", "month")
            if (cap := getattr(self, f"cap_per_{period}")) is not None
        ]
        return ", ".join([text, *caps])


class PointModifier(models.Model):
    """A campaign or time-bound modifier (DOMAIN §4.2)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    code = models.SlugField(max_length=64, help_text=CODE_HELP)
    name = models.CharField(max_length=200, blank=True)
    multiplier = models.DecimalField(
        max_digits=6, decimal_places=3, default=Decimal(1), validators=[MinValueValidator(Decimal(0))]
    )
    bonus_points = models.PositiveIntegerField(default=0, help_text="Added once per event.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    days_of_week = models.JSONField(default=list, blank=True, help_text="0 = Monday … 6 = Sunday; empty = all.")
    event_types = models.JSONField(default=list, blank=True)
    rules = models.ManyToManyField(PointConversionRule, blank=True, related_name="modifiers")
    product = models.SlugField(max_length=64, blank=True)
    partner = models.SlugField(max_length=64, blank=True)
    tiers = models.ManyToManyField("tiers.Tier", blank=True, related_name="+")
    campaign_code = models.CharField(max_length=64, blank=True)
    exclusive = models.BooleanField(default=False, help_text="Does not stack: the largest exclusive applies alone.")
    campaign_total = models.PositiveIntegerField(null=True, blank=True, help_text="Pool of points it may add.")
    pool_used = models.PositiveBigIntegerField(default=0, editable=False)
    status = models.CharField(max_length=16, choices=ConfigStatus.choices, default=ConfigStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded_fields=["pool_used"])

    class Meta:
        ordering = ["-starts_at", "code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_point_modifier_code")]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if problems := _event_types_errors(self.event_types):
            errors["event_types"] = problems
        days = self.days_of_week
        if not isinstance(days, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            errors["days_of_week"] = ["A list of weekdays from 0 (Monday) to 6 (Sunday)."]
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            errors["ends_at"] = ["Must be after starts_at."]
        if errors:
            raise ValidationError(errors)


class PointPolicy(models.Model):
    """A tenant's welcome points and global caps (DOMAIN §4.4)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="point_policy")
    welcome_points = models.PositiveIntegerField(default=0)
    cap_per_event = models.PositiveIntegerField(null=True, blank=True)
    cap_per_day = models.PositiveIntegerField(null=True, blank=True)
    cap_per_week = models.PositiveIntegerField(null=True, blank=True)
    cap_per_month = models.PositiveIntegerField(null=True, blank=True)
    point_value = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=0,
        help_text="What one point is worth to the program, in its currency: liability = points × this value.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked()

    class Meta:
        verbose_name_plural = "point policies"

    def __str__(self) -> str:
        return f"point policy of {self.tenant_id}"


def default_sync_status() -> str:
    """New transactions wait for the Point Service when one is configured, else are ``skipped``."""
    return PointTransaction.Sync.PENDING if settings.POINT_SERVICE_URL else PointTransaction.Sync.SKIPPED


class PointTransaction(models.Model):
    """One entry of a member's point ledger, with its breakdown. ``sync_status`` follows its delivery to
    the Point Service (``events.integrations``)."""

    class Kind(models.TextChoices):
        EARN = "earn"
        WELCOME = "welcome"
        CODE = "code"
        REVERSAL = "reversal"
        ADJUSTMENT = "adjustment"

    class Sync(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        SKIPPED = "skipped", "skipped (no Point Service configured)"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="point_transactions")
    event = models.ForeignKey("members.MemberEvent", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    rule = models.ForeignKey(PointConversionRule, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    base = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    tier_multiplier = models.DecimalField(max_digits=6, decimal_places=2, default=1)
    modifiers = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    uncapped = models.BigIntegerField(default=0)
    # An earn's points before the day/week/month caps: what in-order cap allocation hands out.
    demand = models.BigIntegerField(null=True, blank=True)
    points = models.BigIntegerField()
    capped_by = models.CharField(max_length=80, blank=True)
    reversal_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversals")
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    sync_status = models.CharField(max_length=16, choices=Sync.choices, default=default_sync_status)
    correlation_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["member", "-occurred_at"], name="pointtx_member_occurred")]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d} ({self.member_id})"


class PointBucket(models.Model):
    """Points already counted in one cap bucket of one member: ``rule:<id>:day:2026-03-04``,
    ``global:week:2026-W10``, ``global:month:2026-03``. Incremented with an atomic upsert."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=120)
    total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "key"], name="uniq_point_bucket")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.key}={self.total}"

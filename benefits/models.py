"""The benefit catalog, how tiers and campaigns map to it, members' grants (DOMAIN §5), and event codes
with their redemptions (DOMAIN §6)."""

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from tenancy.history import tracked
from tenancy.models import Tenant
from tiers.criteria import CriteriaError, normalize_criteria

CODE_HELP = "Letters, digits, '-' and '_'; unique per tenant."


class Benefit(models.Model):
    class Type(models.TextChoices):
        DISCOUNT = "discount"
        VOUCHER = "voucher"
        FREE_SHIPPING = "free_shipping"
        PRIORITY_SUPPORT = "priority_support"
        CAMPAIGN_ACCESS = "campaign_access"
        CASHBACK = "cashback"
        POINT_MULTIPLIER = "point_multiplier"
        CUSTOM = "custom"

    class Lifetime(models.TextChoices):
        PERMANENT = "permanent", "permanent: while its source holds"
        TEMPORARY = "temporary", "temporary: duration_days after grant, or a validity window"
        CONDITIONAL = "conditional", "conditional: its criteria must hold at grant"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    code = models.SlugField(max_length=64, help_text=CODE_HELP)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.CUSTOM)
    value = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, help_text='e.g. {"percent": 10}')
    lifetime = models.CharField(max_length=16, choices=Lifetime.choices, default=Lifetime.PERMANENT)
    duration_days = models.PositiveIntegerField(null=True, blank=True)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    criteria = models.JSONField(default=list, blank=True, help_text="Conditional benefits: as promotion rules.")
    usage_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Uses per grant; empty = unlimited.")
    total_quantity = models.PositiveIntegerField(null=True, blank=True, help_text="Only the first N grants.")
    granted_count = models.PositiveIntegerField(default=0, editable=False)
    exclusive_group = models.SlugField(max_length=64, blank=True, help_text="A member holds one of a group.")
    priority = models.IntegerField(default=0, help_text="Within an exclusive group the highest wins.")
    components = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="bundles")
    is_template = models.BooleanField(default=False, help_text="Never granted; copied by 'create from template'.")
    retain_on_loss = models.BooleanField(default=False, help_text="Kept when its tier is lost (e.g. vouchers).")
    active = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded_fields=["granted_count"])

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_benefit_code")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.lifetime == self.Lifetime.TEMPORARY and not self.duration_days and not self.valid_until:
            errors["duration_days"] = ["A temporary benefit needs duration_days or valid_until."]
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            errors["valid_until"] = ["Must be after valid_from."]
        if self.lifetime == self.Lifetime.CONDITIONAL:
            try:
                self.criteria = normalize_criteria(self.criteria)
            except CriteriaError as exc:
                errors["criteria"] = exc.messages
        elif self.criteria:
            errors["criteria"] = ["Only a conditional benefit has criteria."]
        if not isinstance(self.value, dict):
            errors["value"] = ["A JSON object."]
        if errors:
            raise ValidationError(errors)


class TierBenefitMapping(models.Model):
    """A tier's benefit; an inheritable one also applies to every higher-ranked tier of the tier type."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tier = models.ForeignKey("tiers.Tier", on_delete=models.CASCADE, related_name="benefit_mappings")
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="tier_mappings")
    inheritable = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = tracked()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tier", "benefit"], name="uniq_tier_benefit")]

    def __str__(self) -> str:
        return f"{self.tier} → {self.benefit}"


class CampaignBenefitMapping(models.Model):
    """A benefit granted when an event of the campaign matches (optional criteria as in §3.3)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    campaign_code = models.CharField(max_length=64)
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="campaign_mappings")
    criteria = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = tracked()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "campaign_code", "benefit"], name="uniq_campaign_benefit")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_code} → {self.benefit}"

    def clean(self) -> None:
        if self.criteria:
            try:
                self.criteria = normalize_criteria(self.criteria)
            except CriteriaError as exc:
                raise ValidationError({"criteria": exc.messages}) from exc


class MemberBenefit(models.Model):
    """A grant of a benefit to a member. At most one active grant per (member, benefit, source)."""

    class Source(models.TextChoices):
        TIER = "tier"
        CAMPAIGN = "campaign"
        EVENT_CODE = "event_code"
        MANUAL = "manual"

    class Status(models.TextChoices):
        ACTIVE = "active"
        USED_UP = "used_up"
        EXPIRED = "expired"
        REVOKED = "revoked"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="benefits")
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="grants")
    source = models.CharField(max_length=16, choices=Source.choices)
    source_ref = models.CharField(max_length=120, blank=True, help_text="Tier, campaign or code that gave it.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-granted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "benefit", "source"], condition=Q(status="active"), name="uniq_active_grant"
            )
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="grant_status_expiry")]

    def __str__(self) -> str:
        return f"{self.benefit_id} → {self.member_id} ({self.status})"


class EventCode(models.Model):
    """A code a member redeems (DOMAIN §6): case-insensitive, unique per tenant."""

    class Action(models.TextChoices):
        PROMOTE_TIER = "promote_tier"
        GRANT_BENEFIT = "grant_benefit"
        AWARD_POINTS = "award_points"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=64, help_text="Stored in capitals; matched case-insensitively.")
    name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    tier = models.ForeignKey("tiers.Tier", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    points = models.PositiveIntegerField(null=True, blank=True)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True, help_text="1 = single use; empty = any.")
    per_member_limit = models.PositiveIntegerField(default=1)
    redemptions = models.PositiveIntegerField(default=0, editable=False)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded_fields=["redemptions"])

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_event_code")]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        self.code = (self.code or "").strip().upper()
        errors: dict[str, list[str]] = {}
        needs = {
            self.Action.PROMOTE_TIER: "tier",
            self.Action.GRANT_BENEFIT: "benefit",
            self.Action.AWARD_POINTS: "points",
        }
        wanted = needs.get(self.Action(self.action)) if self.action in self.Action.values else None
        for field in ("tier", "benefit", "points"):
            present = getattr(self, f"{field}_id" if field != "points" else field) is not None
            if field == wanted and not present:
                errors[field] = [f"Required for {self.action}."]
            elif field != wanted and present:
                errors[field] = [f"Not used by {self.action}; leave it empty."]
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            errors["valid_until"] = ["Must be after valid_from."]
        if self.per_member_limit < 1:
            errors["per_member_limit"] = ["At least 1."]
        if errors:
            raise ValidationError(errors)


class EventCodeRedemption(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    event_code = models.ForeignKey(EventCode, on_delete=models.PROTECT, related_name="redemption_rows")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    result = models.JSONField(default=dict, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["event_code", "member"], name="redemption_code_member")]

    def __str__(self) -> str:
        return f"{self.event_code_id} by {self.member_id}"

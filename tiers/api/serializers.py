"""Input and output serializers of the tier configuration API (tier types, tiers, promotion rules).

Input serializers only check the shape of a request; the services (``tiers.services``) validate the
rows, audit and save. Related ids (``tier_type``, ``target_tier``) resolve only within the caller's
tenant, so another tenant's id is an ordinary "object does not exist" field error.

Input fields that have a default take it when a create or a PUT omits them (a PUT replaces the whole
object); a PATCH changes only the fields it names.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import scope_to_tenant
from config.serializers import ApiModelSerializer
from tiers.criteria import OPERATORS, CriteriaError, normalize_criteria
from tiers.models import MemberTierAssignment, PromotionRule, Tier, TierType

TIER_TYPE_FIELDS = [
    "id",
    "code",
    "name",
    "mode",
    "qualification",
    "window_days",
    "validity",
    "validity_days",
    "grace_days",
    "demotion_step",
    "product",
    "partner",
    "priority",
    "active",
]
TIER_FIELDS = [
    "id",
    "tier_type",
    "code",
    "name",
    "rank",
    "is_default",
    "climbable",
    "immutable",
    "point_multiplier",
    "available_from",
    "available_until",
    "description",
]
RULE_FIELDS = [
    "id",
    "code",
    "name",
    "tier_type",
    "direction",
    "target_tier",
    "combinator",
    "criteria",
    "priority",
    "status",
    "effective_from",
    "effective_until",
    "description",
]
TIMESTAMPS = ["created_at", "updated_at"]


# --- criteria -------------------------------------------------------------------------------------
class CriterionSerializer(serializers.Serializer):
    """One criterion of a promotion rule (documentation of the ``criteria`` items)."""

    metric = serializers.CharField(
        help_text="spend, transactions, points, days_inactive, tenure_days, quantity:<name>, events:<type>, "
        "attribute:<name>."
    )
    operator = serializers.ChoiceField(choices=OPERATORS)
    value = serializers.JSONField(help_text="A number (decimal string for fractions), or a list for 'in'.")
    window_days = serializers.IntegerField(
        required=False, allow_null=True, help_text="Overrides the tier type's qualification window."
    )


@extend_schema_field(CriterionSerializer(many=True))
class CriteriaField(serializers.JSONField):
    """A list of criteria, validated and normalised by ``tiers.criteria.normalize_criteria``."""

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        raw = super().to_internal_value(data)
        try:
            return normalize_criteria(raw)
        except CriteriaError as exc:
            raise serializers.ValidationError(exc.messages) from exc


# --- tier types -----------------------------------------------------------------------------------
class TierTypeOutputSerializer(ApiModelSerializer):
    class Meta:
        model = TierType
        fields = [*TIER_TYPE_FIELDS, *TIMESTAMPS]
        read_only_fields = fields


class TierTypeInputSerializer(ApiModelSerializer):
    class Meta:
        model = TierType
        fields = TIER_TYPE_FIELDS
        read_only_fields = ["id"]
        validators: list[Any] = []  # uniqueness and cross-field rules: the service (409 / 422)
        extra_kwargs = {
            "mode": {"default": TierType.Mode.HYBRID},
            "qualification": {"default": TierType.Qualification.CALENDAR_YEAR},
            "window_days": {"default": None},
            "validity": {"default": TierType.Validity.END_OF_NEXT_PERIOD},
            "validity_days": {"default": None},
            "grace_days": {"default": 0},
            "demotion_step": {"default": TierType.DemotionStep.TO_QUALIFIED},
            "product": {"default": ""},
            "partner": {"default": ""},
            "priority": {"default": 0},
            "active": {"default": True},
        }


# --- tiers ----------------------------------------------------------------------------------------
class TierOutputSerializer(ApiModelSerializer):
    class Meta:
        model = Tier
        fields = [*TIER_FIELDS, *TIMESTAMPS]
        read_only_fields = fields


class TierInputSerializer(ApiModelSerializer):
    """A tier's fields; its tier type comes from the URL on create and never changes."""

    class Meta:
        model = Tier
        fields = TIER_FIELDS
        read_only_fields = ["id", "tier_type"]
        validators: list[Any] = []  # code/rank uniqueness and the single default: the service
        extra_kwargs = {
            "is_default": {"default": False},
            "climbable": {"default": True},
            "immutable": {"default": False},
            "point_multiplier": {"default": Decimal("1.00")},
            "available_from": {"default": None},
            "available_until": {"default": None},
            "description": {"default": ""},
        }


# --- promotion rules ------------------------------------------------------------------------------
class PromotionRuleOutputSerializer(ApiModelSerializer):
    criteria = CriteriaField(read_only=True)
    summary = serializers.SerializerMethodField(help_text="The rule in one line, as the admin lists it.")

    class Meta:
        model = PromotionRule
        fields = [*RULE_FIELDS, "summary", *TIMESTAMPS]
        read_only_fields = fields

    def get_summary(self, rule: PromotionRule) -> str:
        return rule.summary()


class PromotionRuleInputSerializer(ApiModelSerializer):
    criteria = CriteriaField()

    class Meta:
        model = PromotionRule
        fields = RULE_FIELDS
        read_only_fields = ["id"]
        validators: list[Any] = []  # code uniqueness and cross-field rules: the service (409 / 422)
        extra_kwargs = {
            "name": {"default": ""},
            "status": {"default": PromotionRule.Status.DRAFT},
            "direction": {"default": PromotionRule.Direction.PROMOTION},
            "target_tier": {"default": None},
            "combinator": {"default": PromotionRule.Combinator.ANY},
            "priority": {"default": 0},
            "effective_from": {"default": None},
            "effective_until": {"default": None},
            "description": {"default": ""},
        }

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["tier_type"].queryset = TierType.objects.none()
        fields["target_tier"].queryset = Tier.objects.none()
        scope_to_tenant(self, fields, tier_type=TierType.objects.all(), target_tier=Tier.objects.all())
        return fields


# --- a member's tiers (read by the member API, its evaluations and the simulation) ---------------
@extend_schema_field({"type": "number", "nullable": True})
class MetricNumberField(serializers.ReadOnlyField):
    """A metric value as the engine renders it (``tiers.progress.readable``): a JSON number, an integer
    when whole, else two decimals."""


class ProgressCriterionSerializer(serializers.Serializer):
    """One criterion of a rule to the next tier. Numeric metrics (spend, points, counts, quantities,
    days) give numbers; attribute criteria give null in ``current``/``required``/``remaining`` and
    say only whether they are ``met``."""

    rule = serializers.CharField()
    metric = serializers.CharField()
    operator = serializers.CharField()
    current = MetricNumberField(help_text="The member's value in the current window (rounded down to 2 decimals).")
    required = MetricNumberField(help_text="The rule's threshold.")
    remaining = MetricNumberField(help_text="What is still needed (gte/gt criteria; rounded up), else null.")
    met = serializers.BooleanField(help_text="Whether the criterion holds now.")


class ProgressSerializer(serializers.Serializer):
    next_tier = serializers.CharField()
    qualifies = serializers.BooleanField()
    criteria = ProgressCriterionSerializer(many=True)


class MemberTierOutputSerializer(serializers.Serializer):
    """One entry per tier type the member holds (API.md ``GET /member/{memberId}/tier``)."""

    tier_type = serializers.CharField(source="tier_type.code")
    tier_type_name = serializers.CharField(source="tier_type.name")
    tier = serializers.CharField(source="tier.code")
    tier_name = serializers.CharField(source="tier.name")
    rank = serializers.IntegerField(source="tier.rank")
    since = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.SerializerMethodField()
    source = serializers.CharField()
    locked_until = serializers.DateTimeField(source="lock_until", allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    progress = serializers.SerializerMethodField()

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, assignment: MemberTierAssignment) -> dict | None:
        """Given by the view in ``context["progress"]`` (tier type id → progress); absent elsewhere."""
        return self.context.get("progress", {}).get(assignment.tier_type_id)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_grace_until(self, assignment: MemberTierAssignment) -> str | None:
        if assignment.valid_until is None:
            return None
        grace = assignment.valid_until + timedelta(days=assignment.tier_type.grace_days)
        return serializers.DateTimeField().to_representation(grace)

"""Input and output serializers of the points configuration API (conversion rules, modifiers, policy).

Input serializers only check the shape of a request; the services (``points.services``) validate the
rows (model ``clean``: event types, per-base requirements, windows, weekdays), audit and save. Related
ids (``tier_type``, ``rules``, ``tiers``) resolve only within the caller's tenant, so another tenant's id
is an ordinary "object does not exist" field error.

Input fields that have a default take it when a create or a PUT omits them (a PUT replaces the whole
object); a PATCH changes only the fields it names.
"""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from config.api import scope_to_tenant
from config.serializers import ApiModelSerializer
from members.models import EVENT_TYPES
from points.models import ConfigStatus, PointConversionRule, PointModifier, PointPolicy
from tiers.models import Tier, TierType

RULE_FIELDS = [
    "id",
    "code",
    "name",
    "event_types",
    "product",
    "partner",
    "source",
    "channel",
    "base",
    "unit_amount",
    "points_per_unit",
    "quantity_name",
    "tier_type",
    "group",
    "priority",
    "rounding",
    "min_amount",
    "cap_per_event",
    "cap_per_day",
    "cap_per_week",
    "cap_per_month",
    "status",
    "effective_from",
    "effective_until",
    "description",
]
MODIFIER_FIELDS = [
    "id",
    "code",
    "name",
    "multiplier",
    "bonus_points",
    "starts_at",
    "ends_at",
    "days_of_week",
    "event_types",
    "rules",
    "product",
    "partner",
    "tiers",
    "campaign_code",
    "exclusive",
    "campaign_total",
    "status",
]
POLICY_FIELDS = ["welcome_points", "cap_per_event", "cap_per_day", "cap_per_week", "cap_per_month"]
TIMESTAMPS = ["created_at", "updated_at"]
WEEKDAYS_MESSAGE = "A list of weekdays from 0 (Monday) to 6 (Sunday)."


def _event_types_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(),
        help_text=f"Event types it applies to ({', '.join(EVENT_TYPES)}); empty = every event type.",
        **kwargs,
    )


class WeekdaysField(serializers.ListField):
    """Weekdays 0 (Monday) … 6 (Sunday); any bad item is one error on the field itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.IntegerField(min_value=0, max_value=6), **kwargs)

    def to_internal_value(self, data: Any) -> list[int]:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(WEEKDAYS_MESSAGE) from exc


# --- conversion rules -----------------------------------------------------------------------------
class ConversionRuleOutputSerializer(ApiModelSerializer):
    event_types = serializers.ListField(child=serializers.CharField(), read_only=True)
    summary = serializers.SerializerMethodField(help_text="The rule in one line, as the admin lists it.")

    class Meta:
        model = PointConversionRule
        fields = [*RULE_FIELDS, "summary", *TIMESTAMPS]
        read_only_fields = fields

    def get_summary(self, rule: PointConversionRule) -> str:
        return rule.summary()


class ConversionRuleInputSerializer(ApiModelSerializer):
    event_types = _event_types_field(default=list)

    class Meta:
        model = PointConversionRule
        fields = RULE_FIELDS
        read_only_fields = ["id"]
        validators: list[Any] = []  # code uniqueness and cross-field rules: the service (409 / 422)
        extra_kwargs = {
            "name": {"default": ""},
            "product": {"default": ""},
            "partner": {"default": ""},
            "source": {"default": ""},
            "channel": {"default": ""},
            "base": {"default": PointConversionRule.Base.PER_AMOUNT},
            "unit_amount": {"default": None},
            "points_per_unit": {"default": 1},
            "quantity_name": {"default": ""},
            "tier_type": {"default": None},
            "group": {"default": "base"},
            "priority": {"default": 0},
            "rounding": {"default": PointConversionRule.Rounding.DOWN},
            "min_amount": {"default": None},
            "cap_per_event": {"default": None},
            "cap_per_day": {"default": None},
            "cap_per_week": {"default": None},
            "cap_per_month": {"default": None},
            "status": {"default": ConfigStatus.ACTIVE},
            "effective_from": {"default": None},
            "effective_until": {"default": None},
            "description": {"default": ""},
        }

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        scope_to_tenant(self, fields, tier_type=TierType.objects.all())
        return fields


# --- modifiers ------------------------------------------------------------------------------------
class ModifierOutputSerializer(ApiModelSerializer):
    days_of_week = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    event_types = serializers.ListField(child=serializers.CharField(), read_only=True)
    rules = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="Conversion rule ids.")
    tiers = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="Tier ids.")

    class Meta:
        model = PointModifier
        fields = [*MODIFIER_FIELDS, "pool_used", *TIMESTAMPS]
        read_only_fields = fields


class ModifierInputSerializer(ApiModelSerializer):
    days_of_week = WeekdaysField(default=list, help_text="0 = Monday … 6 = Sunday; empty = every day.")
    event_types = _event_types_field(default=list)
    rules = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=PointConversionRule.objects.none(),
        default=list,
        help_text="Conversion rule ids it applies to; empty = every rule.",
    )
    tiers = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Tier.objects.none(),
        default=list,
        help_text="Tier ids whose members it applies to; empty = everyone.",
    )

    class Meta:
        model = PointModifier
        fields = MODIFIER_FIELDS
        read_only_fields = ["id"]
        validators: list[Any] = []  # code uniqueness and cross-field rules: the service (409 / 422)
        extra_kwargs = {
            "name": {"default": ""},
            "multiplier": {"default": Decimal(1)},
            "bonus_points": {"default": 0},
            "starts_at": {"default": None},
            "ends_at": {"default": None},
            "product": {"default": ""},
            "partner": {"default": ""},
            "campaign_code": {"default": ""},
            "exclusive": {"default": False},
            "campaign_total": {"default": None},
            "status": {"default": ConfigStatus.ACTIVE},
        }

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        scope_to_tenant(self, fields, rules=PointConversionRule.objects.all(), tiers=Tier.objects.all())
        return fields


# --- policy ---------------------------------------------------------------------------------------
class PointPolicyOutputSerializer(ApiModelSerializer):
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Null until first stored.")

    class Meta:
        model = PointPolicy
        fields = [*POLICY_FIELDS, "updated_at"]
        read_only_fields = fields


class PointPolicyInputSerializer(ApiModelSerializer):
    class Meta:
        model = PointPolicy
        fields = POLICY_FIELDS
        extra_kwargs = {
            "welcome_points": {"default": 0},
            "cap_per_event": {"default": None},
            "cap_per_day": {"default": None},
            "cap_per_week": {"default": None},
            "cap_per_month": {"default": None},
        }

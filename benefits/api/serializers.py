"""Input and output serializers of the benefits configuration API (catalog, tier and campaign mappings,
event codes).

Input serializers only check the shape of a request; the services (``benefits.services``) validate the
rows (model ``clean``: lifetimes, criteria, event code actions, windows), audit and save. Related ids
(``components``, ``benefit``, ``tier``) resolve only within the caller's tenant, so another tenant's id
is an ordinary "object does not exist" field error.

Input fields that have a default take it when a create or a PUT omits them (a PUT replaces the whole
object); a PATCH changes only the fields it names.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from benefits.models import Benefit, CampaignBenefitMapping, EventCode, TierBenefitMapping
from config.api import scope_to_tenant
from config.serializers import ApiModelSerializer
from tiers.api.serializers import CriteriaField, CriterionSerializer
from tiers.models import Tier

BENEFIT_FIELDS = [
    "id",
    "code",
    "name",
    "type",
    "value",
    "lifetime",
    "duration_days",
    "valid_from",
    "valid_until",
    "criteria",
    "usage_limit",
    "total_quantity",
    "exclusive_group",
    "priority",
    "components",
    "is_template",
    "retain_on_loss",
    "active",
    "description",
]
EVENT_CODE_FIELDS = [
    "id",
    "code",
    "name",
    "action",
    "tier",
    "benefit",
    "points",
    "max_redemptions",
    "per_member_limit",
    "valid_from",
    "valid_until",
    "active",
]
TIMESTAMPS = ["created_at", "updated_at"]
JSON_OBJECT_MESSAGE = "A JSON object."


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """Any JSON object (``{"percent": 10}``); anything else is one error on the field."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError(JSON_OBJECT_MESSAGE)
        return value


@extend_schema_field(CriterionSerializer(many=True))
class OptionalCriteriaField(CriteriaField):
    """Criteria as in promotion rules (``tiers.criteria``), where an empty list means "no conditions"."""

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        if data == []:
            return []
        return super().to_internal_value(data)


# --- catalog --------------------------------------------------------------------------------------
class BenefitOutputSerializer(ApiModelSerializer):
    value = JSONObjectField(read_only=True)
    criteria = CriteriaField(read_only=True)
    components = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="Benefit ids (a bundle).")
    granted_count = serializers.IntegerField(
        read_only=True, help_text="Grants counted against total_quantity (0 while the benefit is unlimited)."
    )

    class Meta:
        model = Benefit
        fields = [*BENEFIT_FIELDS, "granted_count", *TIMESTAMPS]
        read_only_fields = fields


class BenefitInputSerializer(ApiModelSerializer):
    value = JSONObjectField(default=dict, help_text='The benefit\'s value, e.g. {"percent": 10}.')
    criteria = OptionalCriteriaField(
        default=list, help_text="Conditional benefits only: criteria (as promotion rules) that must hold at grant."
    )
    components = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Benefit.objects.none(),
        default=list,
        help_text="Benefit ids a bundle grants; empty = not a bundle.",
    )

    class Meta:
        model = Benefit
        fields = BENEFIT_FIELDS
        read_only_fields = ["id"]
        validators: list[Any] = []  # code uniqueness and cross-field rules: the service (409 / 422)
        extra_kwargs = {
            "type": {"default": Benefit.Type.CUSTOM},
            "lifetime": {"default": Benefit.Lifetime.PERMANENT},
            "duration_days": {"default": None},
            "valid_from": {"default": None},
            "valid_until": {"default": None},
            "usage_limit": {"default": None},
            "total_quantity": {"default": None},
            "exclusive_group": {"default": ""},
            "priority": {"default": 0},
            "is_template": {"default": False},
            "retain_on_loss": {"default": False},
            "active": {"default": True},
            "description": {"default": ""},
        }

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        scope_to_tenant(self, fields, components=Benefit.objects.all())
        return fields


class BenefitCopyInputSerializer(serializers.Serializer):
    """Create from template: the new benefit's code, and optionally its name (default: the template's)."""

    code = serializers.SlugField(max_length=64, help_text="The new benefit's code (unique per tenant).")
    name = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True, help_text="Empty = the template's name."
    )


# --- tier mappings --------------------------------------------------------------------------------
class TierBenefitOutputSerializer(ApiModelSerializer):
    class Meta:
        model = TierBenefitMapping
        fields = ["id", "tier", "benefit", "inheritable", "created_at"]
        read_only_fields = fields


class TierBenefitInputSerializer(serializers.Serializer):
    benefit = serializers.PrimaryKeyRelatedField(queryset=Benefit.objects.none(), help_text="Benefit id.")
    inheritable = serializers.BooleanField(
        default=True, help_text="Also applies to every higher-ranked tier of the tier type."
    )

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        scope_to_tenant(self, fields, benefit=Benefit.objects.all())
        return fields


# --- campaign mappings ----------------------------------------------------------------------------
class CampaignBenefitOutputSerializer(ApiModelSerializer):
    criteria = CriteriaField(read_only=True)

    class Meta:
        model = CampaignBenefitMapping
        fields = ["id", "campaign_code", "benefit", "criteria", "created_at"]
        read_only_fields = fields


class CampaignBenefitInputSerializer(serializers.Serializer):
    benefit = serializers.PrimaryKeyRelatedField(queryset=Benefit.objects.none(), help_text="Benefit id.")
    criteria = OptionalCriteriaField(
        default=list, help_text="Criteria the member must meet when the campaign's event arrives; empty = none."
    )

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        scope_to_tenant(self, fields, benefit=Benefit.objects.all())
        return fields


# --- event codes ----------------------------------------------------------------------------------
class EventCodeOutputSerializer(ApiModelSerializer):
    redemptions = serializers.IntegerField(read_only=True, help_text="Redemptions so far.")

    class Meta:
        model = EventCode
        fields = [*EVENT_CODE_FIELDS, "redemptions", *TIMESTAMPS]
        read_only_fields = fields


class EventCodeInputSerializer(ApiModelSerializer):
    class Meta:
        model = EventCode
        fields = EVENT_CODE_FIELDS
        read_only_fields = ["id"]
        validators: list[Any] = []  # code uniqueness and cross-field rules: the service (409 / 422)
        extra_kwargs = {
            "code": {"help_text": "Matched case-insensitively; stored and returned in capitals."},
            "name": {"default": ""},
            "tier": {"default": None, "help_text": "Tier id (promote_tier)."},
            "benefit": {"default": None, "help_text": "Benefit id (grant_benefit)."},
            "points": {"default": None, "help_text": "Points (award_points)."},
            "max_redemptions": {"default": None},
            "per_member_limit": {"default": 1, "min_value": 1},
            "valid_from": {"default": None},
            "valid_until": {"default": None},
            "active": {"default": True},
        }

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        scope_to_tenant(self, fields, tier=Tier.objects.all(), benefit=Benefit.objects.all())
        return fields

"""Input and output serializers of the member API (``events.api.member_views``): a member, their
points and benefits. A member's tiers are the tier API's (``tiers.api.serializers``)."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.serializers import ApiModelSerializer
from members.models import Member
from tiers.api.serializers import MemberTierOutputSerializer


class MemberOutputSerializer(ApiModelSerializer):
    tiers = MemberTierOutputSerializer(source="tier_assignments", many=True, read_only=True)

    class Meta:
        model = Member
        fields = [
            "external_id",
            "name",
            "email",
            "mobile",
            "status",
            "attributes",
            "registered_at",
            "iam_linked",
            "tiers",
        ]
        read_only_fields = fields


class MemberRegisterInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, default="")
    mobile = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    attributes = serializers.DictField(required=False, default=dict)

    def validate_external_id(self, value: str) -> str:
        if "/" in value or not value.strip():
            raise serializers.ValidationError("Must be non-blank and contain no '/'.")
        return value


class MemberTierChangeInputSerializer(serializers.Serializer):
    tier_type = serializers.SlugField(max_length=64)
    tier = serializers.SlugField(max_length=64)
    reason = serializers.CharField(max_length=2000)
    source = serializers.ChoiceField(choices=["manual", "invitation"], default="manual")
    lock_until = serializers.DateTimeField(required=False, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class MemberTierRemoveInputSerializer(serializers.Serializer):
    tier_type = serializers.SlugField(max_length=64)
    reason = serializers.CharField(max_length=2000)


class PointTransactionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    rule = serializers.CharField(source="rule.code", allow_null=True, default=None)
    event_id = serializers.CharField(source="event.event_id", allow_null=True, default=None)
    base = serializers.DecimalField(max_digits=18, decimal_places=4)
    tier_multiplier = serializers.DecimalField(max_digits=6, decimal_places=2)
    modifiers = serializers.JSONField()
    uncapped = serializers.IntegerField()
    points = serializers.IntegerField()
    capped_by = serializers.CharField()
    reversal_of = serializers.IntegerField(source="reversal_of_id", allow_null=True)
    occurred_at = serializers.DateTimeField()
    sync_status = serializers.CharField()


class WindowTotalsSerializer(serializers.Serializer):
    """Net points (earned, welcome, code, reversals, adjustments) by each ledger row's ``occurred_at``,
    in the tenant's time zone. An event's points count on the day the event occurred, welcome points
    on the day of registration, code points on the day of the redemption, a reversal on its refund's."""

    day = serializers.IntegerField(help_text="Today (tenant time).")
    week = serializers.IntegerField(help_text="This ISO week, Monday to Sunday (tenant time).")
    month = serializers.IntegerField(help_text="This calendar month (tenant time).")


class MemberPointsOutputSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="The balance: the sum of every ledger row.")
    window_totals = WindowTotalsSerializer()
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    transactions = PointTransactionOutputSerializer(many=True)


class PointQuoteAwardSerializer(serializers.Serializer):
    rule = serializers.CharField(source="rule_code")
    base = serializers.DecimalField(max_digits=18, decimal_places=4)
    tier_multiplier = serializers.DecimalField(max_digits=6, decimal_places=2)
    modifiers = serializers.SerializerMethodField()
    uncapped = serializers.IntegerField()
    points = serializers.IntegerField()
    capped_by = serializers.CharField(allow_null=True)

    def get_modifiers(self, award: Any) -> list[dict]:
        return [
            {"code": m.code, "multiplier": str(m.multiplier), "bonus_points": m.bonus_points} for m in award.modifiers
        ]


class PointQuoteSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    transactions = PointQuoteAwardSerializer(many=True)


class MemberBenefitOutputSerializer(serializers.Serializer):
    """A grant as API.md shapes ``GET /member/{memberId}/benefit``."""

    id = serializers.IntegerField()
    benefit = serializers.CharField(source="benefit.code")
    name = serializers.CharField(source="benefit.name")
    type = serializers.CharField(source="benefit.type")
    value = serializers.JSONField(source="benefit.value")
    source = serializers.CharField()
    source_ref = serializers.CharField()
    status = serializers.CharField()
    granted_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    uses = serializers.IntegerField()
    usage_limit = serializers.IntegerField(source="benefit.usage_limit", allow_null=True)


class MemberBenefitUseOutputSerializer(MemberBenefitOutputSerializer):
    """A grant after a claim: its uses, what is left (null = unlimited), and when it closed."""

    remaining = serializers.SerializerMethodField()
    closed_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_remaining(self, grant: Any) -> int | None:
        limit = grant.benefit.usage_limit
        return None if limit is None else max(limit - grant.uses, 0)


class MemberBenefitApplyOutputSerializer(serializers.Serializer):
    """What a re-evaluation changed: benefit codes granted, revoked, and not granted because their
    limited quantity is all given out."""

    granted = serializers.ListField(child=serializers.CharField())
    revoked = serializers.ListField(child=serializers.CharField())
    exhausted = serializers.ListField(child=serializers.CharField())


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}], "example": "late-checkout"})
class BenefitReferenceField(serializers.Field):
    """A benefit of the tenant by its integer id or its code (a JSON string, even if all digits)."""

    default_error_messages = {"invalid": "A benefit id (integer) or code (string)."}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        if isinstance(data, str) and not (0 < len(data.strip()) <= 64):
            self.fail("invalid")
        return data.strip() if isinstance(data, str) else data

    def to_representation(self, value: Any) -> Any:
        return value


class MemberBenefitEligibilityInputSerializer(serializers.Serializer):
    benefit = BenefitReferenceField()


class EligibilityReasonSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable: see benefits.engine.ELIGIBILITY_REASONS.")
    detail = serializers.CharField()


class MemberBenefitEligibilityOutputSerializer(serializers.Serializer):
    benefit = serializers.CharField()
    eligible = serializers.BooleanField(help_text="Whether POST .../benefit/apply would grant it now.")
    reasons = EligibilityReasonSerializer(many=True, help_text="Every reason it would not (empty when eligible).")
    tier = serializers.CharField(allow_null=True, help_text="The held tier (or inherited tier) it comes through.")
    via = serializers.ListField(child=serializers.CharField(), help_text="Bundles it comes through.")

"""``POST /member/{memberId}/event-code/redeem`` (DOMAIN §6): a member redeems an event code.

A member action (``privilege:write``). The member is looked up first (another tenant's member is a
404), then the body (422), then :func:`events.event_codes.redeem_event_code` decides. Honors
``Idempotency-Key``: a retry with the same key and body gets the original 201 and body with
``Idempotent-Replayed: true``, never a second redemption. Without a key, a repeat is a new attempt
(409 ``code_limit_reached`` once the member's limit is reached).
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benefits.models import EventCode
from config.api import IDEMPOTENCY_KEY, MEMBER_ID, SCOPE_WRITE, tenant_of
from events.event_codes import redeem_event_code
from members.selectors import find_member
from tenancy.idempotency import idempotent


class EventCodeRedeemInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=64, help_text="The event code, in any letter case.")


class RedeemedTierChangeSerializer(serializers.Serializer):
    tier_type = serializers.CharField()
    from_ = serializers.CharField(allow_null=True, help_text="The tier held before (null: none in this type).")
    to = serializers.CharField()
    from_rank = serializers.IntegerField(allow_null=True)
    to_rank = serializers.IntegerField()
    change = serializers.IntegerField(help_text="The id of the tier-history row.")

    def get_fields(self) -> dict[str, Any]:
        # "from" is a Python keyword: declared as from_, rendered as from.
        return {("from" if name == "from_" else name): f for name, f in super().get_fields().items()}


class RedeemedGrantSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The grant's id (as in GET /member/{memberId}/benefit).")
    benefit = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    via = serializers.ListField(child=serializers.CharField(), help_text="Bundles it was granted through.")


class RedeemedPointsSerializer(serializers.Serializer):
    transaction = serializers.IntegerField(help_text="The point transaction's id (kind 'code').")
    points = serializers.IntegerField()


class EventCodeRedemptionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The redemption's id.")
    code = serializers.CharField(help_text="The code as stored (capitals).")
    action = serializers.ChoiceField(choices=EventCode.Action.choices)
    redeemed_at = serializers.DateTimeField()
    tier_change = RedeemedTierChangeSerializer(allow_null=True, help_text="promote_tier: the change made.")
    grants = RedeemedGrantSerializer(many=True, allow_null=True, help_text="grant_benefit: the grants made.")
    points = RedeemedPointsSerializer(allow_null=True, help_text="award_points: the points awarded.")


PROBLEM = "application/problem+json"


@extend_schema(tags=["benefits"], parameters=[MEMBER_ID, IDEMPOTENCY_KEY])
class EventCodeRedeemView(APIView):
    """Redeem an event code for the member: promote a tier (as an invitation), grant a benefit, or
    award points, atomically. Failed attempts are limited per member (429 with ``Retry-After``)."""

    write_scope = SCOPE_WRITE

    @extend_schema(
        request=EventCodeRedeemInputSerializer,
        responses={
            201: EventCodeRedemptionOutputSerializer,
            404: OpenApiResponse(description=f"{PROBLEM}: member_not_found, code_not_found."),
            409: OpenApiResponse(
                description=f"{PROBLEM}: code_inactive, code_not_yet_valid, code_expired, code_limit_reached, "
                "code_exhausted, member_not_active, invitation_not_upward, tier_immutable, tier_unavailable, "
                "benefit_unavailable, benefit_already_held, benefit_exhausted, idempotency_conflict."
            ),
            422: OpenApiResponse(description=f"{PROBLEM}: validation_error."),
            429: OpenApiResponse(description=f"{PROBLEM}: too_many_attempts, with Retry-After (seconds)."),
        },
    )
    def post(self, request: Request, member_id: str) -> Any:
        tenant = tenant_of(request)
        member = find_member(tenant=tenant, external_id=member_id)
        data = EventCodeRedeemInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            redemption = redeem_event_code(
                tenant=tenant, member=member, code=data.validated_data["code"], actor=request.user
            )
            return Response(EventCodeRedemptionOutputSerializer(redemption).data, status=status.HTTP_201_CREATED)

        return idempotent(request, run)

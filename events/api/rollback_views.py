"""Rollback (API.md "Rollback"): undo a member's tier change, reverse a point transaction, revoke a
benefit grant, and read the member's rollback history. Admin scope; each POST honors
``Idempotency-Key`` (a retry with the same key has one effect), needs a reason, is audited and emitted."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benefits import member_grants
from config.api import IDEMPOTENCY_KEY, MEMBER_ID, SCOPE_ADMIN, tenant_of
from config.errors import Invalid, NotFound
from events.api.member_serializers import MemberBenefitOutputSerializer, PointTransactionOutputSerializer
from events.rollback import rollback_history, rollback_tier_change
from members.selectors import get_member, member_tiers
from points.models import PointTransaction
from points.services import rollback_point_transaction
from tenancy.idempotency import idempotent
from tiers.api.serializers import MemberTierOutputSerializer
from tiers.selectors import tier_type_by_code

REASON = serializers.CharField(max_length=1000, help_text="Why: kept in the audit trail and the history.")


class PointTransactionNotFound(NotFound):
    code = "point_transaction_not_found"
    default_detail = "The member has no point transaction with this id."


class TierRollbackInputSerializer(serializers.Serializer):
    tier_type = serializers.CharField(max_length=50, help_text="The tier type's code.")
    change = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="A tier change id from the member's history: return to the state before it. "
        "Null or absent: undo the latest change of the tier type.",
    )
    reason = REASON


class PointsRollbackInputSerializer(serializers.Serializer):
    transaction = serializers.IntegerField(min_value=1, help_text="The point transaction to reverse.")
    reason = REASON


class BenefitRollbackInputSerializer(serializers.Serializer):
    grant = serializers.IntegerField(min_value=1, help_text="The member's benefit grant to revoke.")
    reason = REASON


TierRollbackOutputSerializer = inline_serializer(
    "TierRollback",
    fields={
        "change": serializers.IntegerField(help_text="The new tier history row (source rollback)."),
        "rolled_back": serializers.IntegerField(help_text="The change undone."),
        "tier_type": serializers.CharField(),
        "from": serializers.CharField(allow_null=True),
        "to": serializers.CharField(allow_null=True, help_text="The restored tier; null: no tier in this type."),
        "tiers": MemberTierOutputSerializer(many=True),
    },
)


class RollbackEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The audit entry's id.")
    kind = serializers.ChoiceField(choices=["tier", "points", "benefit"])
    target = serializers.IntegerField(help_text="The tier change, point transaction or grant undone.")
    reason = serializers.CharField()
    actor = serializers.CharField()
    at = serializers.DateTimeField()
    before = serializers.JSONField()
    after = serializers.JSONField()


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


@extend_schema(tags=["rollback"], parameters=[MEMBER_ID, IDEMPOTENCY_KEY])
class MemberTierRollbackView(APIView):
    """Undo the member's latest tier change of a tier type, or return to the state before a given one
    (``events.rollback.rollback_tier_change``): the tier's benefits follow and ``tier.changed`` is
    emitted. 409 ``rollback_not_reversible``, ``already_rolled_back``, ``nothing_to_roll_back``,
    ``member_erased``; 404 ``tier_change_not_found``."""

    write_scope = SCOPE_ADMIN

    @extend_schema(request=TierRollbackInputSerializer, responses=TierRollbackOutputSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        values = _valid(TierRollbackInputSerializer, request)
        tier_type = tier_type_by_code(tenant=tenant, code=values["tier_type"])
        if tier_type is None:
            raise Invalid(errors={"tier_type": [f"Unknown tier type {values['tier_type']!r}."]})

        def run() -> Response:
            change = rollback_tier_change(
                tenant=tenant,
                member=member,
                tier_type=tier_type,
                change_id=values["change"],
                reason=values["reason"],
                actor=request.user,
            )
            return Response(
                {
                    "change": change.pk,
                    "rolled_back": change.reverts_id,
                    "tier_type": tier_type.code,
                    "from": change.from_tier.code if change.from_tier else None,
                    "to": change.to_tier.code if change.to_tier else None,
                    "tiers": MemberTierOutputSerializer(member_tiers(member=member), many=True).data,
                }
            )

        return idempotent(request, run)


@extend_schema(tags=["rollback"], parameters=[MEMBER_ID, IDEMPOTENCY_KEY])
class MemberPointsRollbackView(APIView):
    """Reverse one of the member's point transactions exactly (``points.services.
    rollback_point_transaction``): 201 with the reversal. 409 ``already_reversed``,
    ``reversal_not_reversible``, ``member_erased``; 404 ``point_transaction_not_found``."""

    write_scope = SCOPE_ADMIN

    @extend_schema(request=PointsRollbackInputSerializer, responses={201: PointTransactionOutputSerializer})
    def post(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        values = _valid(PointsRollbackInputSerializer, request)
        tx = PointTransaction.objects.filter(tenant=tenant, member=member, pk=values["transaction"]).first()
        if tx is None:
            raise PointTransactionNotFound()

        def run() -> Response:
            reversal = rollback_point_transaction(tenant=tenant, tx=tx, actor=request.user, reason=values["reason"])
            reversal = PointTransaction.objects.select_related("event", "rule").get(pk=reversal.pk)
            return Response(PointTransactionOutputSerializer(reversal).data, status=status.HTTP_201_CREATED)

        return idempotent(request, run)


@extend_schema(tags=["rollback"], parameters=[MEMBER_ID, IDEMPOTENCY_KEY])
class MemberBenefitRollbackView(APIView):
    """Revoke one of the member's active benefit grants (``benefits.member_grants.revoke_member_grant``;
    a tier benefit so revoked is not granted again while the member keeps the tier). 409
    ``benefit_not_active``, ``member_erased``; 404 ``benefit_grant_not_found``."""

    write_scope = SCOPE_ADMIN

    @extend_schema(request=BenefitRollbackInputSerializer, responses=MemberBenefitOutputSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        values = _valid(BenefitRollbackInputSerializer, request)
        grant = member_grants.get_member_grant(tenant=tenant, member=member, grant_id=values["grant"])

        def run() -> Response:
            revoked = member_grants.revoke_member_grant(
                tenant=tenant, grant=grant, actor=request.user, reason=values["reason"]
            )
            return Response(MemberBenefitOutputSerializer(revoked).data)

        return idempotent(request, run)


@extend_schema(tags=["rollback"], parameters=[MEMBER_ID])
class MemberRollbackHistoryView(APIView):
    """The member's rollbacks, newest first (a bare array): tier changes undone, point transactions
    reversed, benefit grants revoked by an operator, each with its reason, actor and time."""

    read_scope = SCOPE_ADMIN

    @extend_schema(responses=RollbackEntrySerializer(many=True))
    def get(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        return Response(RollbackEntrySerializer(rollback_history(tenant=tenant, member=member), many=True).data)

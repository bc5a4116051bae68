"""Member registration and profile, the member's tiers (seed 14.2), and the member's benefit grants:
list, re-evaluate (apply), explain one benefit (eligibility), claim a use."""

from decimal import Decimal
from typing import Any

import django_filters
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benefits import member_grants
from benefits.selectors import active_grants, benefits
from config.api import (
    IDEMPOTENCY_KEY,
    MEMBER_ID,
    SCOPE_ADMIN,
    SCOPE_READ,
    SCOPE_WRITE,
    PageNumberPagination,
    TenantQuerysetMixin,
    instant_query_param,
    require_well_formed_body,
    tenant_of,
)
from config.errors import Invalid
from events.api.member_serializers import (
    MemberBenefitApplyOutputSerializer,
    MemberBenefitEligibilityInputSerializer,
    MemberBenefitEligibilityOutputSerializer,
    MemberBenefitOutputSerializer,
    MemberBenefitUseOutputSerializer,
    MemberOutputSerializer,
    MemberPointsOutputSerializer,
    MemberRegisterInputSerializer,
    MemberTierChangeInputSerializer,
    MemberTierRemoveInputSerializer,
    PointQuoteAwardSerializer,
    PointQuoteSerializer,
    PointTransactionOutputSerializer,
)
from events.erasure import erase_member
from events.registration import register_member
from events.selectors import member_export, tier_progress
from members.api.serializers import PointQuoteInputSerializer
from members.models import Member
from members.selectors import find_member, get_member, member_tiers, members
from members.services import Registration
from points.selectors import member_point_totals, member_points, quote_event_points
from points.types import PointEvent
from tenancy.idempotency import idempotent
from tiers import assignments
from tiers.api.serializers import MemberTierOutputSerializer
from tiers.selectors import tier_by_codes, tier_type_by_code, tiers_held_at

GRANT_ID = OpenApiParameter("grant_id", int, OpenApiParameter.PATH, description="The grant's id (one of the member's).")


class MemberFilter(django_filters.FilterSet):
    external_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Member.Status.choices)
    email = django_filters.CharFilter(lookup_expr="iexact")
    registered_after = django_filters.IsoDateTimeFilter(field_name="registered_at", lookup_expr="gte")
    registered_before = django_filters.IsoDateTimeFilter(field_name="registered_at", lookup_expr="lt")
    tier_type = django_filters.CharFilter(field_name="tier_assignments__tier_type__code")
    tier = django_filters.CharFilter(field_name="tier_assignments__tier__code")

    class Meta:
        model = Member
        fields = ["external_id", "status", "email", "registered_after", "registered_before", "tier_type", "tier"]


@extend_schema(tags=["members"])
class MemberListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List members, or register one (idempotent on ``external_id``: same details → 200, different → 409)."""

    write_scope = SCOPE_WRITE
    serializer_class = MemberOutputSerializer
    filterset_class = MemberFilter
    queryset = Member.objects.none()

    def tenant_queryset(self, tenant):
        return members(tenant=tenant).distinct()

    @extend_schema(
        request=MemberRegisterInputSerializer, responses={201: MemberOutputSerializer, 200: MemberOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        data = MemberRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = tenant_of(request)
        member, created = register_member(
            tenant=tenant, registration=Registration(**data.validated_data), actor=request.user
        )
        body = MemberOutputSerializer(get_member(tenant=tenant, external_id=member.external_id)).data
        if created:
            return Response(body, status=status.HTTP_201_CREATED)
        return Response(body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})


@extend_schema(tags=["members"], parameters=[MEMBER_ID])
class MemberDetailView(APIView):
    @extend_schema(responses=MemberOutputSerializer)
    def get(self, request: Request, member_id: str) -> Response:
        member = get_member(tenant=tenant_of(request), external_id=member_id)
        return Response(MemberOutputSerializer(member).data)


def _tiers_body(member: Member) -> list:
    return MemberTierOutputSerializer(member_tiers(member=member), many=True).data


AT = OpenApiParameter(
    "at",
    OpenApiTypes.DATETIME,
    OpenApiParameter.QUERY,
    required=False,
    description="A past instant with its UTC offset (e.g. 2026-03-01T00:00:00Z): the tiers held then, read "
    "from the tier history. valid_until, locked_until and expires_at are as recorded when the member entered "
    "the tier; progress is null. Without an offset, in the future or malformed: 422.",
)


@extend_schema(tags=["members"], parameters=[MEMBER_ID])
class MemberTierView(APIView):
    """The member's current tiers: read, assign defaults, change manually (admin), remove (admin)."""

    # Manual changes and removals are admin overrides; assigning defaults is a member action.
    method_scopes = {"POST": SCOPE_WRITE, "PUT": SCOPE_ADMIN, "DELETE": SCOPE_ADMIN}

    @extend_schema(responses=MemberTierOutputSerializer(many=True), parameters=[AT])
    def get(self, request: Request, member_id: str) -> Response:
        """Current tiers with ``progress``: what is still needed for the next tier, per rule and criterion.
        With ``at``, the tiers held at that past instant, from the tier history (``progress`` null)."""
        at = instant_query_param(request, "at")
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        if at is not None:
            if at > timezone.now():
                raise Invalid(errors={"at": ["Must not be in the future: the history knows only the past."]})
            held = tiers_held_at(tenant=tenant, member=member, at=at)
            return Response(MemberTierOutputSerializer(held, many=True).data)
        assignments = list(member.tier_assignments.all())  # prefetched by get_member, in member_tiers order
        context = {"progress": tier_progress(tenant=tenant, member=member, assignments=assignments)}
        return Response(MemberTierOutputSerializer(assignments, many=True, context=context).data)

    @extend_schema(request=None, responses=MemberTierOutputSerializer(many=True))
    def post(self, request: Request, member_id: str) -> Response:
        """Assign the default tier of every active tier type the member holds nothing in."""
        require_well_formed_body(request)
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)

        def run() -> Response:
            assignments.assign_default_tiers(tenant=tenant, member=member, actor=request.user)
            return Response(_tiers_body(member))

        return idempotent(request, run)

    @extend_schema(request=MemberTierChangeInputSerializer, responses=MemberTierOutputSerializer(many=True))
    def put(self, request: Request, member_id: str) -> Response:
        """Manual change or invitation (DOMAIN §3.4). Honors ``Idempotency-Key``."""
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        data = MemberTierChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        tier = _resolve_tier(tenant, values["tier_type"], values["tier"])

        def run() -> Response:
            assignments.change_member_tier(
                tenant=tenant,
                member=member,
                tier=tier,
                reason=values["reason"],
                actor=request.user,
                source=values["source"],
                lock_until=values["lock_until"],
                expires_at=values["expires_at"],
            )
            return Response(_tiers_body(member))

        return idempotent(request, run)

    @extend_schema(request=MemberTierRemoveInputSerializer, responses={204: None})
    def delete(self, request: Request, member_id: str) -> Response:
        """Remove the member's assignment in one tier type (``reason`` required)."""
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        data = MemberTierRemoveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tier_type = tier_type_by_code(tenant=tenant, code=data.validated_data["tier_type"])
        if tier_type is None:
            raise Invalid(errors={"tier_type": [f"Unknown tier type {data.validated_data['tier_type']!r}."]})
        assignments.remove_member_tier(
            tenant=tenant, member=member, tier_type=tier_type, reason=data.validated_data["reason"], actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _resolve_tier(tenant, tier_type_code: str, tier_code: str):
    tier_type = tier_type_by_code(tenant=tenant, code=tier_type_code)
    if tier_type is None:
        raise Invalid(errors={"tier_type": [f"Unknown tier type {tier_type_code!r}."]})
    tier = tier_by_codes(tenant=tenant, tier_type=tier_type, code=tier_code)
    if tier is None:
        raise Invalid(errors={"tier": [f"Tier type {tier_type_code!r} has no tier {tier_code!r}."]})
    return tier


@extend_schema(tags=["points"], parameters=[MEMBER_ID])
class MemberPointsView(APIView):
    """The member's point balance, the current day/week/month totals, and their transactions (newest
    first, paginated with ``?page=&page_size=``)."""

    @extend_schema(responses=MemberPointsOutputSerializer)
    def get(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(member_points(member=member), request, view=self)
        return Response(
            {
                **member_point_totals(tenant=tenant, member=member),
                "count": paginator.page.paginator.count,
                "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
                "transactions": PointTransactionOutputSerializer(page, many=True).data,
            }
        )


@extend_schema(tags=["points"], parameters=[MEMBER_ID])
class MemberPointsCalculateView(APIView):
    """Quote an event's points now (rules, tier multipliers, modifiers, caps as they stand), recording
    nothing."""

    @extend_schema(request=PointQuoteInputSerializer, responses=PointQuoteSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        data = PointQuoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        awards = quote_event_points(
            tenant=tenant,
            member=member,
            event=PointEvent(
                type=values["type"],
                occurred_at=values["occurred_at"],
                amount=values["amount"],
                quantities={k: Decimal(str(v)) for k, v in values["quantities"].items()},
                product=values["product"],
                partner=values["partner"],
                source=values["source"],
                channel=values["channel"],
                campaign_code=values["campaign_code"],
            ),
            assignments=member_tiers(member=member),
        )
        return Response(
            {"total": sum(a.points for a in awards), "transactions": PointQuoteAwardSerializer(awards, many=True).data}
        )


@extend_schema(tags=["benefits"], parameters=[MEMBER_ID])
class MemberBenefitsView(APIView):
    """The member's active benefit grants (a bare array, API.md)."""

    @extend_schema(responses=MemberBenefitOutputSerializer(many=True))
    def get(self, request: Request, member_id: str) -> Response:
        member = get_member(tenant=tenant_of(request), external_id=member_id)
        return Response(MemberBenefitOutputSerializer(active_grants(member=member), many=True).data)


@extend_schema(tags=["benefits"], parameters=[MEMBER_ID])
class MemberBenefitApplyView(APIView):
    """Re-evaluate the member's tier benefits now and apply the outcome (the same re-evaluation as
    after a tier change): missing ones granted, lost ones revoked unless retained. Honors
    ``Idempotency-Key``."""

    @extend_schema(request=None, responses=MemberBenefitApplyOutputSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        require_well_formed_body(request)
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)

        def run() -> Response:
            outcome = member_grants.apply_benefits(tenant=tenant, member=member, actor=request.user)
            return Response(MemberBenefitApplyOutputSerializer(outcome).data)

        return idempotent(request, run)


@extend_schema(tags=["benefits"], parameters=[MEMBER_ID])
class MemberBenefitEligibilityView(APIView):
    """Would the member get this benefit from their tiers now, and if not, why not? A read sent as a
    POST (the benefit is named in the body): ``privilege:read`` is enough. ``benefit`` is an integer id
    or a code (a JSON string)."""

    method_scopes = {"POST": SCOPE_READ}

    @extend_schema(request=MemberBenefitEligibilityInputSerializer, responses=MemberBenefitEligibilityOutputSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        data = MemberBenefitEligibilityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ref = data.validated_data["benefit"]
        benefit = benefits(tenant=tenant).filter(**{"pk" if isinstance(ref, int) else "code": ref}).first()
        if benefit is None:
            raise Invalid(errors={"benefit": [f"No benefit {ref!r}."]})
        verdict = member_grants.benefit_eligibility(tenant=tenant, member=member, benefit=benefit, now=timezone.now())
        return Response(MemberBenefitEligibilityOutputSerializer(verdict).data)


@extend_schema(tags=["benefits"], parameters=[MEMBER_ID, GRANT_ID])
class MemberBenefitUseView(APIView):
    """Claim one use of one of the member's grants: 200 with the grant as updated; 409
    ``benefit_used_up`` when no use is left, 409 ``benefit_not_active`` when it expired or was revoked.
    Honors ``Idempotency-Key`` (a replay returns the first claim's response and claims nothing)."""

    @extend_schema(request=None, responses=MemberBenefitUseOutputSerializer)
    def post(self, request: Request, member_id: str, grant_id: int) -> Response:
        require_well_formed_body(request)
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        grant = member_grants.get_member_grant(tenant=tenant, member=member, grant_id=grant_id)

        def run() -> Response:
            used = member_grants.use_grant(tenant=tenant, grant=grant, actor=request.user, now=timezone.now())
            return Response(MemberBenefitUseOutputSerializer(used).data)

        return idempotent(request, run)


EXPORT_SECTIONS = ("tiers", "tier_history", "events", "point_transactions", "benefit_grants", "audit")
MemberExportSerializer = inline_serializer(
    "MemberExport",
    fields={
        "format": serializers.IntegerField(help_text="The document's layout version."),
        "exported_at": serializers.DateTimeField(),
        "profile": serializers.DictField(),
        **{name: serializers.ListField(child=serializers.DictField()) for name in EXPORT_SECTIONS},
    },
)


@extend_schema(tags=["members"], parameters=[MEMBER_ID])
class MemberExportView(APIView):
    """Everything held about the member, as one JSON document (GDPR/PDPA right of access): profile,
    tiers and their history, events, point transactions, benefit grants and the audit entries naming
    them (``events.selectors.member_export``). Personal data: the admin scope."""

    read_scope = SCOPE_ADMIN

    @extend_schema(responses=MemberExportSerializer)
    def get(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = find_member(tenant=tenant, external_id=member_id)
        return Response(_decimals_as_text(member_export(tenant=tenant, member=member)))


def _decimals_as_text(value: Any) -> Any:
    """Amounts and quantities as the rest of the API writes them: decimal strings, never floats."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _decimals_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals_as_text(v) for v in value]
    return value


class MemberEraseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, help_text="Why, e.g. the member's request and its date.")


@extend_schema(tags=["members"], parameters=[MEMBER_ID, IDEMPOTENCY_KEY])
class MemberEraseView(APIView):
    """Erase the member's personal data for good (GDPR/PDPA; ``events.erasure.erase_member``): the profile
    blanked in the live row and its history, event attributes and outbox payloads scrubbed, status
    ``erased``, audited and ``member.erased`` emitted. Idempotent: erasing an erased member changes
    nothing. Afterwards events for the member are refused (409 ``member_erased``)."""

    write_scope = SCOPE_ADMIN

    @extend_schema(request=MemberEraseInputSerializer, responses=MemberOutputSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = find_member(tenant=tenant, external_id=member_id)
        data = MemberEraseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            erased, _ = erase_member(
                tenant=tenant, member=member, reason=data.validated_data["reason"], actor=request.user
            )
            return Response(MemberOutputSerializer(get_member(tenant=tenant, external_id=erased.external_id)).data)

        return idempotent(request, run)

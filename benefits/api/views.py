"""Configuration API of the benefit catalog, tier and campaign benefit mappings, and event codes
(seed spec 14.3, 14.6; DOMAIN §5–6).

Reads need ``privilege:read``, writes ``privilege:admin``. Every write parses with an input serializer,
calls the ``benefits.services`` function (which validates, audits and bumps ``config_version``) and
renders with the output serializer. Objects of another tenant do not exist here (404).
"""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from benefits.api.serializers import (
    BenefitCopyInputSerializer,
    BenefitInputSerializer,
    BenefitOutputSerializer,
    CampaignBenefitInputSerializer,
    CampaignBenefitOutputSerializer,
    EventCodeInputSerializer,
    EventCodeOutputSerializer,
    TierBenefitInputSerializer,
    TierBenefitOutputSerializer,
)
from benefits.models import Benefit, CampaignBenefitMapping, EventCode, TierBenefitMapping
from benefits.selectors import benefits, campaign_benefit_mappings, event_codes, tier_benefit_mappings
from benefits.services import (
    assign_campaign_benefit,
    assign_tier_benefit,
    create_from_template,
    delete_benefit,
    delete_event_code,
    save_benefit,
    save_event_code,
    unassign_campaign_benefit,
    unassign_tier_benefit,
)
from config.api import SCOPE_ADMIN, TenantQuerysetMixin, tenant_of
from tenancy.models import Tenant
from tiers.models import Tier
from tiers.selectors import tiers

DELETED = OpenApiResponse(response=None, description="Deleted.")
TIER_ID = OpenApiParameter("tier_id", int, OpenApiParameter.PATH, description="The tier's id.")
CAMPAIGN_CODE = OpenApiParameter(
    "campaign_code", str, OpenApiParameter.PATH, description="The campaign code events carry."
)
BENEFIT_ID = OpenApiParameter("benefit_id", int, OpenApiParameter.PATH, description="The mapped benefit's id.")


def _apply(instance: Any, values: dict[str, Any]) -> Any:
    for name, value in values.items():
        setattr(instance, name, value)
    return instance


# --- filters --------------------------------------------------------------------------------------
class BenefitFilter(django_filters.FilterSet):
    code = django_filters.CharFilter()
    type = django_filters.ChoiceFilter(choices=Benefit.Type.choices)
    lifetime = django_filters.ChoiceFilter(choices=Benefit.Lifetime.choices)
    is_template = django_filters.BooleanFilter()
    active = django_filters.BooleanFilter()
    exclusive_group = django_filters.CharFilter()

    class Meta:
        model = Benefit
        fields = ["code", "type", "lifetime", "is_template", "active", "exclusive_group"]


class EventCodeFilter(django_filters.FilterSet):
    code = django_filters.CharFilter(lookup_expr="iexact", help_text="Case-insensitive.")
    action = django_filters.ChoiceFilter(choices=EventCode.Action.choices)
    active = django_filters.BooleanFilter()

    class Meta:
        model = EventCode
        fields = ["code", "action", "active"]


# --- catalog --------------------------------------------------------------------------------------
def _split_components(values: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The benefit's own fields, and its ``components`` (None when not given: unchanged)."""
    values = dict(values)
    return values, values.pop("components", None)


@extend_schema(tags=["benefits"])
class BenefitListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's benefit catalog (by code), or create a benefit."""

    write_scope = SCOPE_ADMIN
    serializer_class = BenefitOutputSerializer
    filterset_class = BenefitFilter
    queryset = Benefit.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Benefit]:
        return benefits(tenant=tenant)

    @extend_schema(request=BenefitInputSerializer, responses={201: BenefitOutputSerializer})
    def post(self, request: Request) -> Response:
        data = BenefitInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values, components = _split_components(data.validated_data)
        benefit = save_benefit(
            tenant=tenant_of(request), benefit=Benefit(**values), actor=request.user, components=components
        )
        return Response(BenefitOutputSerializer(benefit).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["benefits"])
class BenefitDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one benefit. A PATCH without ``components`` keeps them; a benefit
    that was granted, is mapped, given by an event code or part of a bundle cannot be deleted (409
    ``in_use``): deactivate it instead (``active: false``)."""

    write_scope = SCOPE_ADMIN
    serializer_class = BenefitOutputSerializer
    queryset = Benefit.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Benefit]:
        return benefits(tenant=tenant)

    @extend_schema(request=BenefitInputSerializer, responses={200: BenefitOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=BenefitInputSerializer, responses={200: BenefitOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_benefit(tenant=tenant_of(request), benefit=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        benefit = self.get_object()
        data = BenefitInputSerializer(
            benefit, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        values, components = _split_components(data.validated_data)
        benefit = save_benefit(
            tenant=tenant_of(request), benefit=_apply(benefit, values), actor=request.user, components=components
        )
        return Response(BenefitOutputSerializer(benefit).data)


@extend_schema(tags=["benefits"])
class BenefitCopyView(TenantQuerysetMixin, generics.GenericAPIView):
    """Create from template: a new (non-template) benefit copied from this template, bundle contents
    included. Copying a benefit that is not a template is a 422 naming ``template``."""

    write_scope = SCOPE_ADMIN
    serializer_class = BenefitOutputSerializer
    queryset = Benefit.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Benefit]:
        return benefits(tenant=tenant)

    @extend_schema(request=BenefitCopyInputSerializer, responses={201: BenefitOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        template = self.get_object()
        data = BenefitCopyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        benefit = create_from_template(
            tenant=tenant_of(request),
            template=template,
            code=data.validated_data["code"],
            name=data.validated_data["name"],
            actor=request.user,
        )
        return Response(BenefitOutputSerializer(benefit).data, status=status.HTTP_201_CREATED)


# --- tier mappings --------------------------------------------------------------------------------
@extend_schema(tags=["benefits"], parameters=[TIER_ID])
class TierBenefitListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the benefits mapped to a tier (its own mappings, by benefit code), or map a benefit to it:
    201 when the mapping is new, 200 when it existed (its ``inheritable`` is updated)."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierBenefitOutputSerializer
    queryset = TierBenefitMapping.objects.none()

    def tier(self) -> Tier:
        return get_object_or_404(tiers(tenant=tenant_of(self.request)), pk=self.kwargs["tier_id"])

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[TierBenefitMapping]:
        return tier_benefit_mappings(tenant=tenant).filter(tier=self.tier()).order_by("benefit__code", "pk")

    @extend_schema(
        request=TierBenefitInputSerializer,
        responses={201: TierBenefitOutputSerializer, 200: TierBenefitOutputSerializer},
    )
    def post(self, request: Request, tier_id: int) -> Response:
        tier, tenant = self.tier(), tenant_of(request)
        data = TierBenefitInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        benefit = data.validated_data["benefit"]
        existed = tier_benefit_mappings(tenant=tenant).filter(tier=tier, benefit=benefit).exists()
        mapping = assign_tier_benefit(
            tenant=tenant,
            tier=tier,
            benefit=benefit,
            actor=request.user,
            inheritable=data.validated_data["inheritable"],
        )
        return Response(
            TierBenefitOutputSerializer(mapping).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        )


@extend_schema(tags=["benefits"], parameters=[TIER_ID, BENEFIT_ID])
class TierBenefitDetailView(TenantQuerysetMixin, generics.GenericAPIView):
    """Unmap a benefit from a tier (404 when it is not mapped to it). Members' grants are recomputed
    on their next tier evaluation."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierBenefitOutputSerializer
    queryset = TierBenefitMapping.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[TierBenefitMapping]:
        return tier_benefit_mappings(tenant=tenant)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, tier_id: int, benefit_id: int) -> Response:
        tier = get_object_or_404(tiers(tenant=tenant_of(request)), pk=tier_id)
        mapping = get_object_or_404(self.get_queryset(), tier=tier, benefit_id=benefit_id)
        unassign_tier_benefit(tenant=tenant_of(request), mapping=mapping, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- campaign mappings ----------------------------------------------------------------------------
@extend_schema(tags=["benefits"], parameters=[CAMPAIGN_CODE])
class CampaignBenefitListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the benefits granted by a campaign's events, or map a benefit to the campaign (with optional
    criteria): 201 when the mapping is new, 200 when it existed (its criteria are replaced)."""

    write_scope = SCOPE_ADMIN
    serializer_class = CampaignBenefitOutputSerializer
    queryset = CampaignBenefitMapping.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[CampaignBenefitMapping]:
        return (
            campaign_benefit_mappings(tenant=tenant)
            .filter(campaign_code=self.kwargs["campaign_code"])
            .order_by("benefit__code", "pk")
        )

    @extend_schema(
        request=CampaignBenefitInputSerializer,
        responses={201: CampaignBenefitOutputSerializer, 200: CampaignBenefitOutputSerializer},
    )
    def post(self, request: Request, campaign_code: str) -> Response:
        tenant = tenant_of(request)
        data = CampaignBenefitInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        benefit = data.validated_data["benefit"]
        existed = campaign_benefit_mappings(tenant=tenant).filter(campaign_code=campaign_code, benefit=benefit).exists()
        mapping = assign_campaign_benefit(
            tenant=tenant,
            campaign_code=campaign_code,
            benefit=benefit,
            actor=request.user,
            criteria=data.validated_data["criteria"],
        )
        return Response(
            CampaignBenefitOutputSerializer(mapping).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )


@extend_schema(tags=["benefits"], parameters=[CAMPAIGN_CODE, BENEFIT_ID])
class CampaignBenefitDetailView(TenantQuerysetMixin, generics.GenericAPIView):
    """Unmap a benefit from a campaign (404 when it is not mapped to it)."""

    write_scope = SCOPE_ADMIN
    serializer_class = CampaignBenefitOutputSerializer
    queryset = CampaignBenefitMapping.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[CampaignBenefitMapping]:
        return campaign_benefit_mappings(tenant=tenant)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, campaign_code: str, benefit_id: int) -> Response:
        mapping = get_object_or_404(self.get_queryset(), campaign_code=campaign_code, benefit_id=benefit_id)
        unassign_campaign_benefit(tenant=tenant_of(request), mapping=mapping, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- event codes ----------------------------------------------------------------------------------
@extend_schema(tags=["benefits"])
class EventCodeListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's event codes, or create one (``promote_tier`` needs ``tier``, ``grant_benefit``
    ``benefit``, ``award_points`` ``points``; the others stay empty)."""

    write_scope = SCOPE_ADMIN
    serializer_class = EventCodeOutputSerializer
    filterset_class = EventCodeFilter
    queryset = EventCode.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[EventCode]:
        return event_codes(tenant=tenant)

    @extend_schema(request=EventCodeInputSerializer, responses={201: EventCodeOutputSerializer})
    def post(self, request: Request) -> Response:
        data = EventCodeInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        event_code = save_event_code(
            tenant=tenant_of(request), event_code=EventCode(**data.validated_data), actor=request.user
        )
        return Response(EventCodeOutputSerializer(event_code).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["benefits"])
class EventCodeDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one event code. A redeemed code cannot be deleted (409
    ``in_use``): deactivate it instead (``active: false``)."""

    write_scope = SCOPE_ADMIN
    serializer_class = EventCodeOutputSerializer
    queryset = EventCode.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[EventCode]:
        return event_codes(tenant=tenant)

    @extend_schema(request=EventCodeInputSerializer, responses={200: EventCodeOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=EventCodeInputSerializer, responses={200: EventCodeOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_event_code(tenant=tenant_of(request), event_code=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        event_code = self.get_object()
        data = EventCodeInputSerializer(
            event_code, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        event_code = save_event_code(
            tenant=tenant_of(request), event_code=_apply(event_code, data.validated_data), actor=request.user
        )
        return Response(EventCodeOutputSerializer(event_code).data)

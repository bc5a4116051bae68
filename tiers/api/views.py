"""Configuration API of tier types, tiers and promotion rules (seed spec 14.1, 14.2, 14.4).

Reads need ``privilege:read``, writes ``privilege:admin``. Every write parses with an input serializer,
calls the ``tiers.services`` function (which validates, audits and bumps ``config_version``) and renders
with the output serializer. Objects of another tenant do not exist here (404).
"""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import SCOPE_ADMIN, TenantQuerysetMixin, tenant_of
from tenancy.models import Tenant
from tiers.api.serializers import (
    PromotionRuleInputSerializer,
    PromotionRuleOutputSerializer,
    TierInputSerializer,
    TierOutputSerializer,
    TierTypeInputSerializer,
    TierTypeOutputSerializer,
)
from tiers.models import PromotionRule, Tier, TierType
from tiers.selectors import promotion_rules, tier_types, tiers
from tiers.services import (
    delete_promotion_rule,
    delete_tier,
    delete_tier_type,
    save_promotion_rule,
    save_tier,
    save_tier_type,
)

DELETED = OpenApiResponse(response=None, description="Deleted.")


def _apply(instance: Any, values: dict[str, Any]) -> Any:
    for name, value in values.items():
        setattr(instance, name, value)
    return instance


# --- filters --------------------------------------------------------------------------------------
class TierTypeFilter(django_filters.FilterSet):
    code = django_filters.CharFilter()
    active = django_filters.BooleanFilter()
    mode = django_filters.ChoiceFilter(choices=TierType.Mode.choices)

    class Meta:
        model = TierType
        fields = ["code", "active", "mode"]


class TierFilter(django_filters.FilterSet):
    tier_type = django_filters.NumberFilter(field_name="tier_type_id", help_text="Tier type id.")
    code = django_filters.CharFilter()

    class Meta:
        model = Tier
        fields = ["tier_type", "code"]


class TierTypeTierFilter(django_filters.FilterSet):
    code = django_filters.CharFilter()

    class Meta:
        model = Tier
        fields = ["code"]


class PromotionRuleFilter(django_filters.FilterSet):
    code = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=PromotionRule.Status.choices)
    direction = django_filters.ChoiceFilter(choices=PromotionRule.Direction.choices)
    tier_type = django_filters.NumberFilter(field_name="tier_type_id", help_text="Tier type id.")

    class Meta:
        model = PromotionRule
        fields = ["code", "status", "direction", "tier_type"]


# --- tier types -----------------------------------------------------------------------------------
@extend_schema(tags=["tiers"])
class TierTypeListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's tier types (ladders), or create one."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierTypeOutputSerializer
    filterset_class = TierTypeFilter
    queryset = TierType.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[TierType]:
        return tier_types(tenant=tenant)

    @extend_schema(request=TierTypeInputSerializer, responses={201: TierTypeOutputSerializer})
    def post(self, request: Request) -> Response:
        data = TierTypeInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        tier_type = save_tier_type(
            tenant=tenant_of(request), tier_type=TierType(**data.validated_data), actor=request.user
        )
        return Response(TierTypeOutputSerializer(tier_type).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["tiers"])
class TierTypeDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one tier type. Deleting removes its tiers; it is refused (409
    ``in_use``) while members hold its tiers, rules reference it or member history names it."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierTypeOutputSerializer
    queryset = TierType.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[TierType]:
        return tier_types(tenant=tenant)

    @extend_schema(request=TierTypeInputSerializer, responses={200: TierTypeOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=TierTypeInputSerializer, responses={200: TierTypeOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_tier_type(tenant=tenant_of(request), tier_type=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        tier_type = self.get_object()
        data = TierTypeInputSerializer(
            tier_type, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        tier_type = save_tier_type(
            tenant=tenant_of(request), tier_type=_apply(tier_type, data.validated_data), actor=request.user
        )
        return Response(TierTypeOutputSerializer(tier_type).data)


# --- tiers ----------------------------------------------------------------------------------------
@extend_schema(tags=["tiers"])
class TierTypeTierListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tiers of one tier type (lowest rank first), or add a tier to it."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierOutputSerializer
    filterset_class = TierTypeTierFilter
    queryset = Tier.objects.none()

    def tier_type(self) -> TierType:
        return get_object_or_404(tier_types(tenant=tenant_of(self.request)), pk=self.kwargs["type_id"])

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Tier]:
        return tiers(tenant=tenant).filter(tier_type=self.tier_type())

    @extend_schema(request=TierInputSerializer, responses={201: TierOutputSerializer})
    def post(self, request: Request, type_id: int) -> Response:
        tier_type = self.tier_type()
        data = TierInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        tier = save_tier(
            tenant=tenant_of(request),
            tier=Tier(tier_type=tier_type, **data.validated_data),
            actor=request.user,
        )
        return Response(TierOutputSerializer(tier).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["tiers"])
class TierListView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's tiers of every tier type (filter by ``tier_type`` id or ``code``)."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierOutputSerializer
    filterset_class = TierFilter
    queryset = Tier.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Tier]:
        return tiers(tenant=tenant)


@extend_schema(tags=["tiers"])
class TierDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one tier. Its tier type never changes. Making it the default
    moves the default to it; deleting is refused (409 ``in_use``) while anything holds it."""

    write_scope = SCOPE_ADMIN
    serializer_class = TierOutputSerializer
    queryset = Tier.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Tier]:
        return tiers(tenant=tenant)

    @extend_schema(request=TierInputSerializer, responses={200: TierOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=TierInputSerializer, responses={200: TierOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_tier(tenant=tenant_of(request), tier=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        tier = self.get_object()
        data = TierInputSerializer(tier, data=request.data, partial=partial, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        tier = save_tier(tenant=tenant_of(request), tier=_apply(tier, data.validated_data), actor=request.user)
        return Response(TierOutputSerializer(tier).data)


# --- promotion rules ------------------------------------------------------------------------------
@extend_schema(tags=["tiers"])
class PromotionRuleListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's promotion and demotion rules, or create one."""

    write_scope = SCOPE_ADMIN
    serializer_class = PromotionRuleOutputSerializer
    filterset_class = PromotionRuleFilter
    queryset = PromotionRule.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[PromotionRule]:
        return promotion_rules(tenant=tenant)

    @extend_schema(request=PromotionRuleInputSerializer, responses={201: PromotionRuleOutputSerializer})
    def post(self, request: Request) -> Response:
        data = PromotionRuleInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        rule = save_promotion_rule(
            tenant=tenant_of(request), rule=PromotionRule(**data.validated_data), actor=request.user
        )
        return Response(PromotionRuleOutputSerializer(rule).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["tiers"])
class PromotionRuleDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one rule. A rule that decided tier changes cannot be deleted
    (409 ``in_use``): archive it instead (``status: archived``)."""

    write_scope = SCOPE_ADMIN
    serializer_class = PromotionRuleOutputSerializer
    queryset = PromotionRule.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[PromotionRule]:
        return promotion_rules(tenant=tenant)

    @extend_schema(request=PromotionRuleInputSerializer, responses={200: PromotionRuleOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=PromotionRuleInputSerializer, responses={200: PromotionRuleOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_promotion_rule(tenant=tenant_of(request), rule=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        rule = self.get_object()
        data = PromotionRuleInputSerializer(
            rule, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        rule = save_promotion_rule(
            tenant=tenant_of(request), rule=_apply(rule, data.validated_data), actor=request.user
        )
        return Response(PromotionRuleOutputSerializer(rule).data)

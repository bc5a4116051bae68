"""Configuration API of point conversion rules, point modifiers and the tenant point policy (DOMAIN §4).

Reads need ``privilege:read``, writes ``privilege:admin``. Every write parses with an input serializer,
calls the ``points.services`` function (which validates, audits and bumps ``config_version``) and renders
with the output serializer. Objects of another tenant do not exist here (404).
"""

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import SCOPE_ADMIN, TenantQuerysetMixin, tenant_of
from points.api.serializers import (
    ConversionRuleInputSerializer,
    ConversionRuleOutputSerializer,
    ModifierInputSerializer,
    ModifierOutputSerializer,
    PointPolicyInputSerializer,
    PointPolicyOutputSerializer,
)
from points.models import ConfigStatus, PointConversionRule, PointModifier
from points.selectors import conversion_rules, modifiers
from points.services import (
    delete_conversion_rule,
    delete_modifier,
    point_policy,
    save_conversion_rule,
    save_modifier,
    save_point_policy,
)
from tenancy.models import Tenant

DELETED = OpenApiResponse(response=None, description="Deleted.")


def _apply(instance: Any, values: dict[str, Any]) -> Any:
    for name, value in values.items():
        setattr(instance, name, value)
    return instance


# --- filters --------------------------------------------------------------------------------------
class ConversionRuleFilter(django_filters.FilterSet):
    code = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=ConfigStatus.choices)
    group = django_filters.CharFilter()
    tier_type = django_filters.NumberFilter(field_name="tier_type_id", help_text="Tier type id.")

    class Meta:
        model = PointConversionRule
        fields = ["code", "status", "group", "tier_type"]


class ModifierFilter(django_filters.FilterSet):
    code = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=ConfigStatus.choices)
    campaign_code = django_filters.CharFilter()

    class Meta:
        model = PointModifier
        fields = ["code", "status", "campaign_code"]


# --- conversion rules -----------------------------------------------------------------------------
@extend_schema(tags=["points"])
class ConversionRuleListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's point conversion rules (by group, highest priority first), or create one."""

    write_scope = SCOPE_ADMIN
    serializer_class = ConversionRuleOutputSerializer
    filterset_class = ConversionRuleFilter
    queryset = PointConversionRule.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[PointConversionRule]:
        return conversion_rules(tenant=tenant)

    @extend_schema(request=ConversionRuleInputSerializer, responses={201: ConversionRuleOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ConversionRuleInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        rule = save_conversion_rule(
            tenant=tenant_of(request), rule=PointConversionRule(**data.validated_data), actor=request.user
        )
        return Response(ConversionRuleOutputSerializer(rule).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["points"])
class ConversionRuleDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one conversion rule. A rule that awarded points cannot be deleted
    (409 ``in_use``): archive it instead (``status: archived``)."""

    write_scope = SCOPE_ADMIN
    serializer_class = ConversionRuleOutputSerializer
    queryset = PointConversionRule.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[PointConversionRule]:
        return conversion_rules(tenant=tenant)

    @extend_schema(request=ConversionRuleInputSerializer, responses={200: ConversionRuleOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=ConversionRuleInputSerializer, responses={200: ConversionRuleOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_conversion_rule(tenant=tenant_of(request), rule=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        rule = self.get_object()
        data = ConversionRuleInputSerializer(
            rule, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        rule = save_conversion_rule(
            tenant=tenant_of(request), rule=_apply(rule, data.validated_data), actor=request.user
        )
        return Response(ConversionRuleOutputSerializer(rule).data)


# --- modifiers ------------------------------------------------------------------------------------
def _split_scope(values: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """The modifier's own fields, and its ``rules`` and ``tiers`` (None when not given: unchanged)."""
    values = dict(values)
    return values, values.pop("rules", None), values.pop("tiers", None)


@extend_schema(tags=["points"])
class ModifierListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's point modifiers (campaign and time-bound multipliers and bonuses), or create one."""

    write_scope = SCOPE_ADMIN
    serializer_class = ModifierOutputSerializer
    filterset_class = ModifierFilter
    queryset = PointModifier.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[PointModifier]:
        return modifiers(tenant=tenant)

    @extend_schema(request=ModifierInputSerializer, responses={201: ModifierOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ModifierInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values, rules, tiers = _split_scope(data.validated_data)
        modifier = save_modifier(
            tenant=tenant_of(request), modifier=PointModifier(**values), actor=request.user, rules=rules, tiers=tiers
        )
        return Response(ModifierOutputSerializer(modifier).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["points"])
class ModifierDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one modifier. A PATCH without ``rules`` or ``tiers`` keeps them;
    a modifier whose campaign pool has given points cannot be deleted (409 ``in_use``): archive it."""

    write_scope = SCOPE_ADMIN
    serializer_class = ModifierOutputSerializer
    queryset = PointModifier.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[PointModifier]:
        return modifiers(tenant=tenant)

    @extend_schema(request=ModifierInputSerializer, responses={200: ModifierOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=ModifierInputSerializer, responses={200: ModifierOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_modifier(tenant=tenant_of(request), modifier=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        modifier = self.get_object()
        data = ModifierInputSerializer(
            modifier, data=request.data, partial=partial, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        values, rules, tiers = _split_scope(data.validated_data)
        modifier = save_modifier(
            tenant=tenant_of(request),
            modifier=_apply(modifier, values),
            actor=request.user,
            rules=rules,
            tiers=tiers,
        )
        return Response(ModifierOutputSerializer(modifier).data)


# --- policy ---------------------------------------------------------------------------------------
@extend_schema(tags=["points"])
class PointPolicyView(APIView):
    """The tenant's welcome points and global caps (DOMAIN §4.4). Before any is stored it reads as the
    defaults: no welcome points, no caps. A PUT replaces the whole policy."""

    write_scope = SCOPE_ADMIN

    @extend_schema(responses={200: PointPolicyOutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(PointPolicyOutputSerializer(point_policy(tenant=tenant_of(request))).data)

    @extend_schema(request=PointPolicyInputSerializer, responses={200: PointPolicyOutputSerializer})
    def put(self, request: Request) -> Response:
        data = PointPolicyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = save_point_policy(tenant=tenant_of(request), changes=data.validated_data, actor=request.user)
        return Response(PointPolicyOutputSerializer(policy).data)

"""Scenario API (API.md "Wave 2 contract"): ``/simulation/scenario`` list and create, ``/{id}`` read,
replace and delete, ``/{id}/publish``.

Every operation needs ``privilege:admin``. Input serializers check the shape only (ids are integers,
multipliers decimals); ``simulation.scenarios`` decides whether the ids are the tenant's drafts, active
rules and tiers (422 naming the field otherwise: another tenant's id is as unknown as a made-up one),
audits and saves. Another tenant's scenario is a 404.
"""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import SCOPE_ADMIN, TenantQuerysetMixin, require_well_formed_body, tenant_of
from config.errors import NotFound
from simulation.models import Scenario
from simulation.scenarios import KINDS, delete_scenario, publish_scenario, save_scenario
from simulation.selectors import get_scenario, scenarios
from tenancy.models import Tenant

DELETED = OpenApiResponse(response=None, description="Deleted.")
MAX_IDS = 1000


# --- serializers ----------------------------------------------------------------------------------
def _ids_field(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1), default=list, max_length=MAX_IDS, help_text=help_text
    )


class ScenarioChoicesInputSerializer(serializers.Serializer):
    include = _ids_field("Ids of draft objects the scenario makes live.")
    exclude = _ids_field("Ids of active objects the scenario takes out (archived on publish).")


class ScenarioTierOverrideInputSerializer(serializers.Serializer):
    tier = serializers.IntegerField(min_value=1, help_text="Tier id.")
    point_multiplier = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=0, help_text="The tier's point multiplier under the scenario."
    )


class ScenarioInputSerializer(serializers.Serializer):
    code = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    promotion_rules = ScenarioChoicesInputSerializer(default=dict, help_text="Promotion rules in and out.")
    point_rules = ScenarioChoicesInputSerializer(default=dict, help_text="Point conversion rules in and out.")
    modifiers = ScenarioChoicesInputSerializer(default=dict, help_text="Point modifiers in and out.")
    tier_overrides = serializers.ListField(
        child=ScenarioTierOverrideInputSerializer(),
        default=list,
        max_length=MAX_IDS,
        help_text="Tier point multipliers as the scenario would have them.",
    )


class ScenarioChoicesOutputSerializer(serializers.Serializer):
    include = serializers.ListField(child=serializers.IntegerField(), help_text="Draft ids it makes live.")
    exclude = serializers.ListField(child=serializers.IntegerField(), help_text="Active ids it takes out.")


class ScenarioTierOverrideOutputSerializer(serializers.Serializer):
    tier = serializers.IntegerField(source="tier_id", help_text="Tier id.")
    point_multiplier = serializers.DecimalField(max_digits=6, decimal_places=2)


def _choices(scenario: Scenario, field: str) -> dict[str, list[int]]:
    kind = next(k for k in KINDS if k.field == field)
    return {
        "include": sorted(o.pk for o in getattr(scenario, kind.include).all()),
        "exclude": sorted(o.pk for o in getattr(scenario, kind.exclude).all()),
    }


class ScenarioOutputSerializer(serializers.ModelSerializer):
    promotion_rules = serializers.SerializerMethodField()
    point_rules = serializers.SerializerMethodField()
    modifiers = serializers.SerializerMethodField()
    tier_overrides = serializers.SerializerMethodField()

    class Meta:
        model = Scenario
        fields = [
            "id",
            "code",
            "name",
            "promotion_rules",
            "point_rules",
            "modifiers",
            "tier_overrides",
            "created_by",
            "created_at",
            "updated_at",
            "published_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"published_at": {"help_text": "When it was made live; null while it is a plan."}}

    @extend_schema_field(ScenarioChoicesOutputSerializer)
    def get_promotion_rules(self, scenario: Scenario) -> dict[str, list[int]]:
        return _choices(scenario, "promotion_rules")

    @extend_schema_field(ScenarioChoicesOutputSerializer)
    def get_point_rules(self, scenario: Scenario) -> dict[str, list[int]]:
        return _choices(scenario, "point_rules")

    @extend_schema_field(ScenarioChoicesOutputSerializer)
    def get_modifiers(self, scenario: Scenario) -> dict[str, list[int]]:
        return _choices(scenario, "modifiers")

    @extend_schema_field(ScenarioTierOverrideOutputSerializer(many=True))
    def get_tier_overrides(self, scenario: Scenario) -> list[dict[str, Any]]:
        overrides = sorted(scenario.tier_overrides.all(), key=lambda o: o.tier_id)
        return ScenarioTierOverrideOutputSerializer(overrides, many=True).data


class PublishedScenarioOutputSerializer(ScenarioOutputSerializer):
    config_version = serializers.SerializerMethodField(help_text="The tenant's configuration version after it.")

    class Meta(ScenarioOutputSerializer.Meta):
        fields = [*ScenarioOutputSerializer.Meta.fields, "config_version"]
        read_only_fields = fields

    def get_config_version(self, scenario: Scenario) -> int:
        return int(scenario.tenant.config_version)


# --- views ----------------------------------------------------------------------------------------
def _stored(tenant: Tenant, scenario: Scenario) -> Scenario:
    """The scenario as stored now, re-read with what it names prefetched."""
    stored = get_scenario(tenant=tenant, scenario_id=scenario.pk)
    if stored is None:  # deleted by someone else since this request saved it
        raise NotFound()
    return stored


def _render(tenant: Tenant, scenario: Scenario) -> Any:
    return ScenarioOutputSerializer(_stored(tenant, scenario)).data


@extend_schema(tags=["simulation"])
class ScenarioListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's scenarios (latest change first), or save a new one: draft promotion rules,
    conversion rules and modifiers to include, active ones to exclude, tier multipliers to override.
    Included ids must be the tenant's drafts, excluded ids its active objects (422 naming the field)."""

    read_scope = SCOPE_ADMIN
    write_scope = SCOPE_ADMIN
    serializer_class = ScenarioOutputSerializer
    queryset = Scenario.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Scenario]:
        return scenarios(tenant=tenant)

    @extend_schema(request=ScenarioInputSerializer, responses={201: ScenarioOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ScenarioInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = tenant_of(request)
        scenario = save_scenario(tenant=tenant, scenario=Scenario(), data=data.validated_data, actor=request.user)
        return Response(_render(tenant, scenario), status=status.HTTP_201_CREATED)


@extend_schema(tags=["simulation"])
class ScenarioDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace or delete one scenario. A PUT replaces it whole (omitted lists become empty) and
    records a new fingerprint; a published scenario cannot change (409 ``scenario_published``)."""

    read_scope = SCOPE_ADMIN
    write_scope = SCOPE_ADMIN
    serializer_class = ScenarioOutputSerializer
    queryset = Scenario.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Scenario]:
        return scenarios(tenant=tenant)

    @extend_schema(request=ScenarioInputSerializer, responses={200: ScenarioOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        scenario = self.get_object()
        data = ScenarioInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = tenant_of(request)
        scenario = save_scenario(tenant=tenant, scenario=scenario, data=data.validated_data, actor=request.user)
        return Response(_render(tenant, scenario))

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_scenario(tenant=tenant_of(request), scenario=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["simulation"])
class ScenarioPublishView(TenantQuerysetMixin, generics.GenericAPIView):
    """Make the scenario live in one transaction: its drafts become active, its excluded rules and
    modifiers archived, its tier multipliers written; one ``config_version`` bump; audited. 409
    ``scenario_stale`` (``errors`` name what changed) when anything it names changed since it was
    saved, 409 ``scenario_published`` when it already is live."""

    read_scope = SCOPE_ADMIN
    write_scope = SCOPE_ADMIN
    serializer_class = PublishedScenarioOutputSerializer
    queryset = Scenario.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[Scenario]:
        return scenarios(tenant=tenant)

    @extend_schema(request=None, responses={200: PublishedScenarioOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        require_well_formed_body(request)
        tenant = tenant_of(request)
        scenario = self.get_object()
        publish_scenario(tenant=tenant, scenario=scenario, actor=request.user)
        stored = _stored(tenant, scenario)
        stored.tenant = tenant  # carries the bumped config_version
        return Response(PublishedScenarioOutputSerializer(stored).data)

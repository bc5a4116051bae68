"""Member simulation API (API.md): ``GET /simulation/member/{memberId}[?scenario=ID]`` (read scope) and
``POST /simulation/member/{memberId}`` with hypothetical events and/or a scenario (admin scope). Nothing
is written; the response says so with ``"writes": 0``."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import SCOPE_ADMIN, SCOPE_READ, require_well_formed_body, tenant_of
from config.errors import Invalid, NotFound
from members.api.serializers import EventInputSerializer
from members.selectors import get_member
from simulation.member import MemberSimulation, simulate_member
from simulation.models import Scenario
from simulation.selectors import get_scenario
from tenancy.models import Tenant
from tiers.api.serializers import ProgressSerializer
from tiers.models import Tier

MAX_EVENTS = 100
MEMBER_ID = OpenApiParameter("member_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="External id.")
SCENARIO = OpenApiParameter("scenario", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False)


class SimulatedEventSerializer(EventInputSerializer):
    """A hypothetical event: as ``POST /member/{id}/event``, but ``event_id`` and ``source`` only name
    it (defaults ``simulated-<n>`` and ``simulation``) and ``occurred_at`` defaults to now."""

    event_id = serializers.CharField(max_length=200, required=False, default="")
    source = serializers.RegexField(r"^[A-Za-z0-9_.:\-]{1,64}$", max_length=64, required=False, default="simulation")
    occurred_at = serializers.DateTimeField(required=False, default=None)


class SimulationInputSerializer(serializers.Serializer):
    events = serializers.ListField(child=SimulatedEventSerializer(), default=list, max_length=MAX_EVENTS)
    scenario = serializers.IntegerField(min_value=1, allow_null=True, default=None, help_text="Scenario id.")


class SimulatedTierSerializer(serializers.Serializer):
    tier_type = serializers.CharField()
    tier_type_name = serializers.CharField()
    tier = serializers.CharField()
    tier_name = serializers.CharField()
    rank = serializers.IntegerField()
    since = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField()
    locked_until = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    progress = ProgressSerializer(allow_null=True)


class SimulatedEventResultSerializer(serializers.Serializer):
    event_id = serializers.CharField()
    source = serializers.CharField()
    status = serializers.CharField()
    points = serializers.DictField(child=serializers.IntegerField())
    tier_changes = serializers.ListField(child=serializers.DictField())


class SimulationOutputSerializer(serializers.Serializer):
    member_id = serializers.CharField()
    scenario = serializers.IntegerField(allow_null=True)
    tiers = SimulatedTierSerializer(many=True)
    events = SimulatedEventResultSerializer(many=True)
    points = serializers.DictField(child=serializers.IntegerField())
    writes = serializers.IntegerField(help_text="Always 0: a simulation changes nothing.")


def _scenario(tenant: Tenant, scenario_id: int | None, *, field: str) -> Scenario | None:
    if scenario_id is None:
        return None
    scenario = get_scenario(tenant=tenant, scenario_id=scenario_id)
    if scenario is None:
        raise Invalid(errors={field: ["No scenario of this program has this id."]})
    return scenario


def _body(tenant: Tenant, member_id: str, scenario: Scenario | None, outcome: MemberSimulation) -> dict[str, Any]:
    tiers = {t.pk: t for t in Tier.objects.filter(tenant=tenant).select_related("tier_type")}
    views = []
    for view in outcome.tiers:
        tier = tiers[view.tier_id]
        grace = view.valid_until + timedelta(days=tier.tier_type.grace_days) if view.valid_until else None
        views.append(
            {
                "tier_type": tier.tier_type.code,
                "tier_type_name": tier.tier_type.name,
                "tier": tier.code,
                "tier_name": tier.name,
                "rank": tier.rank,
                "since": view.since,
                "valid_until": view.valid_until,
                "grace_until": grace,
                "source": view.source,
                "locked_until": view.lock_until,
                "expires_at": view.expires_at,
                "progress": view.progress,
            }
        )
    return SimulationOutputSerializer(
        {
            "member_id": member_id,
            "scenario": scenario.pk if scenario else None,
            "tiers": views,
            "events": outcome.events,
            "points": {"total": outcome.points},
            "writes": 0,
        }
    ).data


@extend_schema(tags=["simulation"], parameters=[MEMBER_ID])
class MemberSimulationView(APIView):
    """What the engine says about the member now, without writing anything: under the live rules or a
    scenario (as if published now), and with hypothetical events (POST). Tiers come with progress."""

    read_scope = SCOPE_READ
    write_scope = SCOPE_ADMIN

    @extend_schema(parameters=[SCENARIO], responses=SimulationOutputSerializer)
    def get(self, request: Request, member_id: str) -> Response:
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        raw = request.query_params.get("scenario")
        if raw is not None and not raw.isdigit():
            raise Invalid(errors={"scenario": ["A scenario id is a positive integer."]})
        scenario = get_scenario(tenant=tenant, scenario_id=int(raw)) if raw else None
        if raw and scenario is None:
            raise NotFound()  # another tenant's scenario, as any of its objects, does not exist here
        outcome = simulate_member(tenant=tenant, member=member, events=[], scenario=scenario, now=timezone.now())
        return Response(_body(tenant, member_id, scenario, outcome))

    @extend_schema(request=SimulationInputSerializer, responses=SimulationOutputSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        require_well_formed_body(request)
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        data = SimulationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scenario = _scenario(tenant, data.validated_data["scenario"], field="scenario")
        events = [
            {**event, "event_id": event["event_id"] or f"simulated-{n + 1}"}
            for n, event in enumerate(data.validated_data["events"])
        ]
        outcome = simulate_member(tenant=tenant, member=member, events=events, scenario=scenario, now=timezone.now())
        return Response(_body(tenant, member_id, scenario, outcome))

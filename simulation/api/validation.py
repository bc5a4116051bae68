"""Static validation over HTTP (API.md "Wave 2 contract", DOMAIN §9): ``GET /simulation/validate``
lists what in the live program — or in the program a scenario would make live — cannot work as written
or most likely does not do what was meant. Needs ``privilege:admin``; writes nothing."""

from dataclasses import asdict

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import SCOPE_ADMIN, tenant_of
from config.errors import NotFound
from simulation.selectors import get_scenario, validation_issues


class ValidationQuerySerializer(serializers.Serializer):
    scenario = serializers.IntegerField(
        min_value=1, required=False, help_text="A scenario's id: validate the program it would make live."
    )


class IssueObjectSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["tier_type", "tier", "promotion_rule", "conversion_rule", "modifier", "point_policy"]
    )
    id = serializers.IntegerField(allow_null=True, help_text="The object's id (null for the point policy).")
    code = serializers.CharField()


class IssueSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(
        choices=["error", "warning"],
        help_text="`error`: the object can never take effect as written; `warning`: most likely not as meant.",
    )
    code = serializers.ChoiceField(
        choices=[
            "thresholds_not_rising",
            "tier_unreachable",
            "rules_overlap",
            "demotion_points_up",
            "window_inverted",
            "cap_below_award",
            "point_rules_overlap",
        ]
    )
    message = serializers.CharField(help_text="What is wrong and what to do, for a business admin.")
    objects = IssueObjectSerializer(many=True, help_text="The configuration objects the issue concerns.")


class ValidationOutputSerializer(serializers.Serializer):
    issues = IssueSerializer(many=True, help_text="Errors first; empty when nothing was found.")


@extend_schema(tags=["simulation"])
class ValidationView(APIView):
    """Static validation of the tenant's program (DOMAIN §9): thresholds that do not rise with rank,
    climbable tiers no rule reaches, demotion rules of equal priority that a member meets together,
    demotion rules that point up, inverted windows, caps below a single event's award, and conversion
    rules of one group with equal priority and overlapping scope. With ``scenario``, the program that
    scenario would make live."""

    read_scope = SCOPE_ADMIN

    @extend_schema(
        parameters=[ValidationQuerySerializer],
        responses={
            200: ValidationOutputSerializer,
            404: OpenApiResponse(description="No scenario with that id in the caller's tenant (`not_found`)."),
        },
    )
    def get(self, request: Request) -> Response:
        query = ValidationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant = tenant_of(request)
        scenario = None
        if "scenario" in query.validated_data:
            scenario = get_scenario(tenant=tenant, scenario_id=query.validated_data["scenario"])
            if scenario is None:
                raise NotFound("No scenario with that id.")
        issues = validation_issues(tenant=tenant, scenario=scenario)
        return Response(ValidationOutputSerializer({"issues": [asdict(i) for i in issues]}).data)

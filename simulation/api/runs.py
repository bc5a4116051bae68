"""Program backtest API (API.md "Wave 2 contract"): ``POST /simulation/run`` (202, polled),
``GET /simulation/run/{id}``, ``GET /simulation/run/{id}/members`` (paginated, ``?format=csv`` for a
file) and ``POST /simulation/run/{id}/cancel``. All need ``privilege:admin``; another tenant's run is
a 404."""

import csv
import io
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from config.api import SCOPE_ADMIN, TenantQuerysetMixin, require_well_formed_body, tenant_of
from simulation.backtest import cancel, in_rank_order
from simulation.models import AffectedMember, SimulationRun
from simulation.runs import start_run
from simulation.selectors import affected_members, simulation_runs
from tenancy.models import Tenant

CSV_COLUMNS = ["member_id", "tier_type", "baseline", "scenario", "points_delta"]


class RunInputSerializer(serializers.Serializer):
    scenario = serializers.IntegerField(min_value=1, allow_null=True, default=None, help_text="Scenario id.")
    to = serializers.DateField(help_text="Last day (tenant time), inclusive.")
    sample = serializers.IntegerField(min_value=1, max_value=10_000_000, allow_null=True, default=None)
    tier_type = serializers.IntegerField(min_value=1, allow_null=True, default=None, help_text="Tier type id.")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateField(help_text="First day (tenant time).")  # a keyword in Python
        return fields


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class RunOutputSerializer(serializers.ModelSerializer):
    scenario = serializers.IntegerField(source="scenario_id", allow_null=True)
    tier_type = serializers.IntegerField(source="tier_type_id", allow_null=True)
    members = serializers.IntegerField(source="members_total")
    progress = serializers.SerializerMethodField()
    elapsed_s = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    error = serializers.CharField(allow_null=True)

    class Meta:
        model = SimulationRun
        fields = [
            "id",
            "status",
            "url",
            "scenario",
            "starts",
            "ends",
            "sample",
            "tier_type",
            "members",
            "events",
            "progress",
            "elapsed_s",
            "result",
            "error",
            "requested_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_fields(self) -> dict[str, serializers.Field]:
        """``starts``/``ends`` are ``from``/``to`` in the API (Python keywords cannot be declared)."""
        fields = super().get_fields()
        renamed = {"starts": "from", "ends": "to"}
        return {
            renamed.get(name, name): serializers.DateField(source=name, read_only=True) if name in renamed else field
            for name, field in fields.items()
        }

    def to_representation(self, instance: SimulationRun) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["error"] = data["error"] or None
        data["result"] = in_rank_order(data["result"])
        return data

    def get_progress(self, run: SimulationRun) -> dict[str, int]:
        return {"done": run.chunks_done, "total": run.chunks_total}

    def get_elapsed_s(self, run: SimulationRun) -> float | None:
        if run.started_at is None:
            return None
        return round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 3)

    def get_url(self, run: SimulationRun) -> str:
        return reverse("simulation-run-detail", kwargs={"pk": run.pk})


class AffectedMemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = AffectedMember
        fields = CSV_COLUMNS
        read_only_fields = fields


class CSVRenderer(renderers.BaseRenderer):
    """Affected members as a CSV file (``?format=csv``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        rows = data if isinstance(data, list) else []
        writer.writerows(rows)
        return out.getvalue().encode()


class _RunMixin(TenantQuerysetMixin):
    read_scope = SCOPE_ADMIN
    write_scope = SCOPE_ADMIN
    queryset = SimulationRun.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[SimulationRun]:
        return simulation_runs(tenant=tenant)


@extend_schema(tags=["simulation"])
class RunCreateView(_RunMixin, generics.GenericAPIView):
    """Start a program backtest: every member (or the first ``sample``), the events processed from
    ``from`` to ``to``, the live configuration against the scenario. Answers 202 at once; poll ``url``."""

    serializer_class = RunOutputSerializer

    @extend_schema(request=RunInputSerializer, responses={202: RunOutputSerializer})
    def post(self, request: Request) -> Response:
        require_well_formed_body(request)
        data = RunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        run = start_run(
            tenant=tenant_of(request),
            scenario_id=values["scenario"],
            starts=values["from"],
            ends=values["to"],
            sample=values["sample"],
            tier_type_id=values["tier_type"],
            actor=request.user,
        )
        run.refresh_from_db()
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["simulation"])
class RunDetailView(_RunMixin, generics.RetrieveAPIView):
    """A backtest's status, progress and, when done, its result (tier distribution per tier type,
    transitions, points and liability delta, benefit grants, rule hits)."""

    serializer_class = RunOutputSerializer


@extend_schema(tags=["simulation"])
class RunCancelView(_RunMixin, generics.GenericAPIView):
    """Cancel a queued or running backtest; a finished one → 409 ``run_finished``."""

    serializer_class = RunOutputSerializer

    @extend_schema(request=None, responses={200: RunOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        run = cancel(tenant=tenant_of(request), run=self.get_object())
        return Response(RunOutputSerializer(run).data)


@extend_schema(
    tags=["simulation"],
    parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: a file.")],
)
class RunMembersView(_RunMixin, generics.ListAPIView):
    """The members whose tier or points differ between baseline and scenario, one row per tier type
    that differs (``tier_type`` empty when only points do); paginated, or all as CSV."""

    serializer_class = AffectedMemberSerializer
    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        run = self.get_object()
        rows = affected_members(run=run)
        if request.accepted_renderer.format == "csv":
            response = Response(AffectedMemberSerializer(rows, many=True).data)
            response["Content-Disposition"] = f'attachment; filename="simulation-{run.pk}-members.csv"'
            return response
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(AffectedMemberSerializer(page, many=True).data)

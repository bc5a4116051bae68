"""Reconciliation API (API.md "Wave 2 contract"): ``POST /reconciliation/run`` (202, polled),
``GET /reconciliation/run/{id}``, ``GET /reconciliation/run/{id}/discrepancies`` (paginated, filter by
``kind`` and ``code``) and ``POST /reconciliation/run/{id}/cancel``. All need ``privilege:admin``;
another tenant's run is a 404."""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import SCOPE_ADMIN, TenantQuerysetMixin, require_well_formed_body, tenant_of
from reconciliation.models import CHECKS, Discrepancy, ReconciliationRun
from reconciliation.runs import cancel_run, create_run
from reconciliation.selectors import discrepancies, reconciliation_runs
from reconciliation.tasks import queue_run
from tenancy.models import Tenant


class ReconciliationRunInputSerializer(serializers.Serializer):
    fix = serializers.BooleanField(default=False, help_text="Repair what is found; false (default) only reports.")
    checks = serializers.ListField(
        child=serializers.ChoiceField(choices=CHECKS),
        allow_null=True,
        default=None,
        help_text="Which checks; null or absent: all of them.",
    )
    members = serializers.ListField(
        child=serializers.CharField(max_length=200),
        allow_null=True,
        default=None,
        max_length=1000,
        help_text="Members' external ids; null or absent: every member.",
    )


class ReconciliationRunOutputSerializer(serializers.ModelSerializer):
    members = serializers.JSONField(source="member_ids")
    progress = serializers.SerializerMethodField()
    elapsed_s = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    error = serializers.CharField(allow_null=True)

    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "status",
            "url",
            "fix",
            "checks",
            "members",
            "progress",
            "elapsed_s",
            "counts",
            "fixed",
            "error",
            "requested_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: ReconciliationRun) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["error"] = data["error"] or None
        return data

    def get_progress(self, run: ReconciliationRun) -> dict[str, int]:
        return {"done": run.members_done, "total": run.members_total}

    def get_elapsed_s(self, run: ReconciliationRun) -> float | None:
        if run.started_at is None:
            return None
        return round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 3)

    def get_url(self, run: ReconciliationRun) -> str:
        return reverse("reconciliation-run-detail", kwargs={"pk": run.pk})


class DiscrepancySerializer(serializers.ModelSerializer):
    class Meta:
        model = Discrepancy
        fields = ["id", "member_id", "kind", "code", "subject", "expected", "actual", "fixed"]
        read_only_fields = fields


class DiscrepancyFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Discrepancy.Kind.choices)
    code = django_filters.CharFilter()
    member_id = django_filters.CharFilter()

    class Meta:
        model = Discrepancy
        fields = ["kind", "code", "member_id"]


class _RunMixin(TenantQuerysetMixin):
    read_scope = SCOPE_ADMIN
    write_scope = SCOPE_ADMIN
    queryset = ReconciliationRun.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[ReconciliationRun]:
        return reconciliation_runs(tenant=tenant)


@extend_schema(tags=["reconciliation"])
class ReconciliationRunCreateView(_RunMixin, generics.GenericAPIView):
    """Start a reconciliation: every member (or the named ones), the checks asked, a dry run unless
    ``fix``. Answers 202 at once; poll ``url``. One run per program at a time (409
    ``reconciliation_running``)."""

    serializer_class = ReconciliationRunOutputSerializer

    @extend_schema(request=ReconciliationRunInputSerializer, responses={202: ReconciliationRunOutputSerializer})
    def post(self, request: Request) -> Response:
        require_well_formed_body(request)
        data = ReconciliationRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        run = queue_run(
            create_run(
                tenant=tenant_of(request),
                fix=values["fix"],
                checks=values["checks"],
                member_ids=values["members"],
                actor=request.user,
            )
        )
        run.refresh_from_db()
        return Response(ReconciliationRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["reconciliation"])
class ReconciliationRunDetailView(_RunMixin, generics.RetrieveAPIView):
    """A run's status, progress, discrepancies found per check (``counts``) and repaired (``fixed``)."""

    serializer_class = ReconciliationRunOutputSerializer


@extend_schema(tags=["reconciliation"])
class ReconciliationRunCancelView(_RunMixin, generics.GenericAPIView):
    """Stop a queued or running run after its current chunk; a finished one → 409 ``run_finished``."""

    serializer_class = ReconciliationRunOutputSerializer

    @extend_schema(request=None, responses={200: ReconciliationRunOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        require_well_formed_body(request)
        run = cancel_run(tenant=tenant_of(request), run=self.get_object(), actor=request.user)
        return Response(ReconciliationRunOutputSerializer(run).data)


@extend_schema(tags=["reconciliation"])
class ReconciliationDiscrepanciesView(generics.ListAPIView):
    """The run's discrepancies in the order found, paginated: member, check (``kind``), stable ``code``,
    what the event log says (``expected``), what is stored (``actual``), and whether it was repaired."""

    read_scope = SCOPE_ADMIN
    serializer_class = DiscrepancySerializer
    filterset_class = DiscrepancyFilter
    queryset = Discrepancy.objects.none()

    def get_queryset(self) -> QuerySet[Discrepancy]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        runs = reconciliation_runs(tenant=tenant_of(self.request))
        return discrepancies(run=generics.get_object_or_404(runs, pk=self.kwargs["pk"]))

"""Reads of reconciliation runs, tenant explicit."""

from django.db.models import QuerySet

from reconciliation.models import Discrepancy, ReconciliationRun
from tenancy.models import Tenant


def reconciliation_runs(*, tenant: Tenant) -> QuerySet[ReconciliationRun]:
    return ReconciliationRun.objects.filter(tenant=tenant).order_by("-created_at", "-id")


def discrepancies(*, run: ReconciliationRun) -> QuerySet[Discrepancy]:
    return Discrepancy.objects.filter(tenant=run.tenant_id, run=run).order_by("id")

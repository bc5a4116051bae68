"""Reading the audit trail, always within one tenant."""

from django.db.models import QuerySet

from audit.models import AuditEntry
from tenancy.models import Tenant


def audit_entries(*, tenant: Tenant) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(tenant=tenant)

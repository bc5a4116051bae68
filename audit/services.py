"""Writing the audit trail. Every service that changes state calls :func:`record_audit` inside its own
transaction, so the change and its audit entry commit or roll back together."""

from typing import Any

from django.db import models, transaction

from audit.models import AuditEntry
from config.tracing import current_request_id
from tenancy.models import Tenant


def describe_actor(actor: Any) -> str:
    """A stable, non-PII label for whoever acts: a Django user, an API principal, or a system job."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    if getattr(actor, "subject", None):  # tenancy.auth.ServicePrincipal
        return f"service:{actor.subject}"
    username = getattr(actor, "get_username", None)
    if callable(username):
        return f"user:{username()}"
    return str(actor)


def record_audit(
    *,
    tenant: Tenant,
    actor: Any,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    member_id: str = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
    correlation_id: str | None = None,
    source: str = AuditEntry.Source.INTERNAL,
) -> AuditEntry:
    """Append an audit entry. Must run inside the caller's transaction (raises otherwise), so an entry
    never exists for a change that rolled back, nor a change without its entry."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_audit() must be called inside the transaction of the change it records.")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    return AuditEntry.objects.create(
        tenant=tenant,
        actor=describe_actor(actor),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        member_id=member_id,
        before=before,
        after=after,
        reason=reason,
        correlation_id=current_request_id() if correlation_id is None else correlation_id,
        source=source,
    )


@transaction.atomic
def create_audit_entry(
    *,
    tenant: Tenant,
    actor: Any,
    action: str,
    target_type: str = "",
    target_id: str = "",
    member_id: str = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditEntry:
    """An entry recorded by another service through the API (``POST /api/v1/audit``)."""
    return record_audit(
        tenant=tenant,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        member_id=member_id,
        before=before,
        after=after,
        reason=reason,
        source=AuditEntry.Source.API,
    )


def snapshot(instance: models.Model) -> dict[str, Any]:
    """The row's concrete field values (foreign keys as ids) and, once saved, its many-to-many ids,
    for an audit entry's before/after."""
    values = {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.attname not in ("created_at", "updated_at")
    }
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            values[field.name] = sorted(getattr(instance, field.name).values_list("pk", flat=True))
    return values

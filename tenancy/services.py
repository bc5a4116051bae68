"""Writes shared by every configuration model: validated save and protected delete, each audited and
bumping the tenant's ``config_version`` (so cached engine snapshots go stale at once)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.db.models import ProtectedError

from audit.services import record_audit, snapshot
from config.errors import Conflict
from tenancy.models import Tenant

M = TypeVar("M", bound=models.Model)


# The tenants whose config_version bump an open ``one_config_version`` block holds back (pk → tenant).
_HELD_BUMPS: ContextVar[dict[int, Tenant] | None] = ContextVar("held_config_bumps", default=None)


@contextmanager
def one_config_version() -> Iterator[None]:
    """Configuration saves and deletes inside the block bump their tenant's ``config_version`` once,
    when the block ends without an error, instead of once each: a scenario publish changes many rows
    as one configuration change. Use inside the caller's transaction."""
    if _HELD_BUMPS.get() is not None:  # an enclosing block bumps
        yield
        return
    pending: dict[int, Tenant] = {}
    token = _HELD_BUMPS.set(pending)
    try:
        yield
    finally:
        _HELD_BUMPS.reset(token)
    for tenant in pending.values():
        tenant.bump_config_version()


def _bump(tenant: Tenant) -> None:
    held = _HELD_BUMPS.get()
    if held is None:
        tenant.bump_config_version()
    else:
        held[tenant.pk] = tenant


class DuplicateCode(Conflict):
    code = "duplicate_code"
    default_detail = "Another object of this kind already uses this code."


class InUse(Conflict):
    code = "in_use"
    default_detail = "The object is in use and cannot be deleted; archive it instead."


def save_config(
    *,
    tenant: Tenant,
    instance: M,
    actor: Any,
    unique_scope: dict[str, Any] | None = None,
    reason: str = "",
    related: Callable[[M], None] | None = None,
) -> M:
    """Validate and save a configuration row of ``tenant`` inside the caller's transaction.

    ``unique_scope`` names the filter within which ``code`` must be unique (default: the tenant); a
    clash is a 409 ``duplicate_code`` naming the field. ``related`` saves what hangs off the row (its
    many-to-many choices) before the audit entry ``<model>.created|updated`` records it before and after.
    """
    model = type(instance)
    creating = instance._state.adding
    before = None if creating else snapshot(model._default_manager.get(pk=instance.pk))
    instance.tenant = tenant  # type: ignore[attr-defined]
    code = getattr(instance, "code", None)
    if code is not None:
        clash = model._default_manager.filter(**(unique_scope or {"tenant": tenant}), code=code)
        if not creating:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            raise DuplicateCode(
                errors={"code": [f"{str(model._meta.verbose_name).capitalize()} {code!r} already exists."]}
            )
    instance.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:  # a concurrent writer took the code (or rank) first
        raise DuplicateCode("A concurrent change took this code or rank; reload and retry.") from exc
    if related is not None:
        related(instance)
    record_audit(
        tenant=tenant,
        actor=actor,
        action=f"{model._meta.model_name}.{'created' if creating else 'updated'}",
        target=instance,
        before=before,
        after=snapshot(instance),
        reason=reason,
    )
    _bump(tenant)
    return instance


def delete_config(*, tenant: Tenant, instance: models.Model, actor: Any, holders: list[str], reason: str = "") -> None:
    """Delete a configuration row unless something holds it. ``holders`` are human descriptions of what
    does ("held by 3 members"); any → 409 ``in_use`` saying so. Audited; bumps ``config_version``."""
    if holders:
        raise InUse(f"Cannot delete {instance}: {'; '.join(holders)}. Archive it instead.")
    before = snapshot(instance)
    target_type, target_id = instance._meta.label_lower, str(instance.pk)
    try:
        with transaction.atomic():
            instance.delete()
    except ProtectedError as exc:  # a reference the caller did not list
        raise InUse(f"Cannot delete {instance}: other records still reference it. Archive it instead.") from exc
    record_audit(
        tenant=tenant,
        actor=actor,
        action=f"{instance._meta.model_name}.deleted",
        target_type=target_type,
        target_id=target_id,
        before=before,
        reason=reason,
    )
    _bump(tenant)


@transaction.atomic
def save_tenant(*, tenant: Tenant, actor: Any, reason: str = "") -> Tenant:
    """A tenant's own settings (timezone, currency, limits, auto-enrol…), audited as
    ``tenant.created|updated``. A change bumps ``config_version``: the timezone moves local days and
    cap buckets, the limits change how events are judged. ``config_version`` itself is never written
    from the object (a form loaded before a concurrent bump must not take the counter back)."""
    creating = tenant._state.adding
    before = None if creating else snapshot(Tenant.objects.get(pk=tenant.pk))
    tenant.full_clean(exclude=["config_version"], validate_unique=False)
    if creating:
        tenant.save()
    else:
        fields = [f.attname for f in Tenant._meta.concrete_fields if f.name not in ("id", "config_version")]
        tenant.save(update_fields=fields)
        tenant.bump_config_version()
    record_audit(
        tenant=tenant,
        actor=actor,
        action=f"tenant.{'created' if creating else 'updated'}",
        target=tenant,
        before=before,
        after=snapshot(tenant),
        reason=reason,
    )
    return tenant

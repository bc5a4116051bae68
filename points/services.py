"""Writes of the points context: configuration of conversion rules, modifiers and the tenant's point
policy (validated, audited, bumping ``config_version`` through ``tenancy.services``).

Awarding points in the event pipeline, refunds and recalculation come with the rest of issue 5.
"""

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from config.errors import Invalid
from points.models import PointConversionRule, PointModifier, PointPolicy, PointTransaction
from tenancy.models import Tenant
from tenancy.services import delete_config, save_config
from tiers.models import Tier


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@transaction.atomic
def save_conversion_rule(*, tenant: Tenant, rule: PointConversionRule, actor: Any) -> PointConversionRule:
    return save_config(tenant=tenant, instance=rule, actor=actor)


@transaction.atomic
def delete_conversion_rule(*, tenant: Tenant, rule: PointConversionRule, actor: Any) -> None:
    holders = []
    if n := PointTransaction.objects.filter(rule=rule).count():
        holders.append(f"it awarded {_plural(n, 'point transaction')}")
    delete_config(tenant=tenant, instance=rule, actor=actor, holders=holders)


@transaction.atomic
def save_modifier(
    *,
    tenant: Tenant,
    modifier: PointModifier,
    actor: Any,
    rules: Iterable[PointConversionRule] | None = None,
    tiers: Iterable[Tier] | None = None,
) -> PointModifier:
    """Create or update a modifier; ``rules`` and ``tiers`` (its scope) replace the current ones when
    given and must belong to the tenant."""
    rules = list(rules) if rules is not None else None
    tiers = list(tiers) if tiers is not None else None
    errors = {}
    if rules is not None and any(r.tenant_id != tenant.pk for r in rules):
        errors["rules"] = ["Rules of another tenant."]
    if tiers is not None and any(t.tenant_id != tenant.pk for t in tiers):
        errors["tiers"] = ["Tiers of another tenant."]
    if errors:
        raise Invalid(errors=errors)
    modifier = save_config(tenant=tenant, instance=modifier, actor=actor)
    if rules is not None:
        modifier.rules.set(rules)
    if tiers is not None:
        modifier.tiers.set(tiers)
    return modifier


@transaction.atomic
def delete_modifier(*, tenant: Tenant, modifier: PointModifier, actor: Any) -> None:
    holders = []
    if modifier.pool_used:
        holders.append(f"its campaign pool has given {modifier.pool_used:,} points")
    delete_config(tenant=tenant, instance=modifier, actor=actor, holders=holders)


def point_policy(*, tenant: Tenant) -> PointPolicy:
    """The tenant's policy (none stored yet: all defaults, no caps, no welcome points)."""
    return PointPolicy.objects.filter(tenant=tenant).first() or PointPolicy(tenant=tenant)


@transaction.atomic
def save_point_policy(*, tenant: Tenant, changes: dict[str, Any], actor: Any) -> PointPolicy:
    policy = point_policy(tenant=tenant)
    for field, value in changes.items():
        setattr(policy, field, value)
    policy.tenant = tenant
    policy.full_clean(validate_unique=False, validate_constraints=False)
    from audit.services import record_audit, snapshot

    before = None if policy.pk is None else snapshot(PointPolicy.objects.get(pk=policy.pk))
    policy.save()
    record_audit(
        tenant=tenant, actor=actor, action="pointpolicy.updated", target=policy, before=before, after=snapshot(policy)
    )
    tenant.bump_config_version()
    return policy

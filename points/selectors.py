"""Reads of the points context: the tenant's conversion rules, modifiers and policy, and the engine
snapshots built from them (cached per ``config_version``)."""

from django.db.models import QuerySet

from points.models import ConfigStatus, PointConversionRule, PointModifier, PointPolicy
from points.types import ConversionRuleSpec, ModifierSpec, Policy
from tenancy.models import Tenant

_CACHE: dict[tuple[int, int], tuple[tuple[ConversionRuleSpec, ...], tuple[ModifierSpec, ...], Policy]] = {}


def conversion_rules(*, tenant: Tenant) -> QuerySet[PointConversionRule]:
    return PointConversionRule.objects.filter(tenant=tenant).select_related("tier_type")


def modifiers(*, tenant: Tenant) -> QuerySet[PointModifier]:
    return PointModifier.objects.filter(tenant=tenant).prefetch_related("rules", "tiers")


def point_specs(*, tenant: Tenant) -> tuple[tuple[ConversionRuleSpec, ...], tuple[ModifierSpec, ...], Policy]:
    """Active rules, active modifiers and the policy as the points engine reads them."""
    key = (tenant.pk, tenant.config_version)
    if key in _CACHE:
        return _CACHE[key]
    rules = tuple(
        ConversionRuleSpec(
            id=r.pk,
            code=r.code,
            base=r.base,
            points_per_unit=r.points_per_unit,
            unit_amount=r.unit_amount,
            quantity_name=r.quantity_name,
            event_types=tuple(r.event_types),
            product=r.product,
            partner=r.partner,
            source=r.source,
            channel=r.channel,
            min_amount=r.min_amount,
            tier_type_id=r.tier_type_id,
            group=r.group,
            priority=r.priority,
            rounding=r.rounding,
            cap_per_event=r.cap_per_event,
            cap_per_day=r.cap_per_day,
            cap_per_week=r.cap_per_week,
            cap_per_month=r.cap_per_month,
            status=r.status,
            effective_from=r.effective_from,
            effective_until=r.effective_until,
        )
        for r in PointConversionRule.objects.filter(tenant=tenant, status=ConfigStatus.ACTIVE)
    )
    mods = tuple(
        ModifierSpec(
            id=m.pk,
            code=m.code,
            multiplier=m.multiplier,
            bonus_points=m.bonus_points,
            starts_at=m.starts_at,
            ends_at=m.ends_at,
            days_of_week=tuple(m.days_of_week),
            event_types=tuple(m.event_types),
            rule_ids=tuple(r.pk for r in m.rules.all()),
            product=m.product,
            partner=m.partner,
            tier_ids=tuple(t.pk for t in m.tiers.all()),
            campaign_code=m.campaign_code,
            exclusive=m.exclusive,
            campaign_total=m.campaign_total,
            status=m.status,
        )
        for m in modifiers(tenant=tenant).filter(status=ConfigStatus.ACTIVE)
    )
    stored = PointPolicy.objects.filter(tenant=tenant).first()
    policy = (
        Policy(
            cap_per_event=stored.cap_per_event,
            cap_per_day=stored.cap_per_day,
            cap_per_week=stored.cap_per_week,
            cap_per_month=stored.cap_per_month,
        )
        if stored
        else Policy()
    )
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[key] = (rules, mods, policy)
    return _CACHE[key]

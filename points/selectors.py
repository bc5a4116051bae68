"""Reads of the points context: the tenant's conversion rules, modifiers and policy, and the engine
snapshots built from them (cached per ``config_version``)."""

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from members.models import Member
from points.buckets import bucket_keys, capped_bucket_names
from points.engine import calculate
from points.models import (
    ConfigStatus,
    PointBucket,
    PointConversionRule,
    PointModifier,
    PointPolicy,
    PointTransaction,
)
from points.types import Award, ConversionRuleSpec, ModifierSpec, PointEvent, Policy
from tenancy.models import Tenant
from tiers.models import MemberTierAssignment

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
        conversion_rule_spec(r) for r in PointConversionRule.objects.filter(tenant=tenant, status=ConfigStatus.ACTIVE)
    )
    mods = tuple(modifier_spec(m) for m in modifiers(tenant=tenant).filter(status=ConfigStatus.ACTIVE))
    policy = policy_spec(PointPolicy.objects.filter(tenant=tenant).first())
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[key] = (rules, mods, policy)
    return _CACHE[key]


def conversion_rule_spec(r: PointConversionRule) -> ConversionRuleSpec:
    """A conversion rule as the engine reads it; a draft included by a scenario counts as active."""
    return ConversionRuleSpec(
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
        status=ConfigStatus.ACTIVE,
        effective_from=r.effective_from,
        effective_until=r.effective_until,
    )


def modifier_spec(m: PointModifier) -> ModifierSpec:
    """A modifier (rules and tiers prefetched) as the engine reads it; drafts count as active."""
    return ModifierSpec(
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
        status=ConfigStatus.ACTIVE,
    )


def policy_spec(stored: PointPolicy | None) -> Policy:
    if stored is None:
        return Policy()
    return Policy(
        cap_per_event=stored.cap_per_event,
        cap_per_day=stored.cap_per_day,
        cap_per_week=stored.cap_per_week,
        cap_per_month=stored.cap_per_month,
    )


def member_points(*, member: Member) -> QuerySet[PointTransaction]:
    return PointTransaction.objects.filter(member=member).select_related("rule", "event")


def point_windows(now: datetime, tz: ZoneInfo) -> dict[str, tuple[datetime, datetime]]:
    """The current day, ISO week (Monday to Sunday) and calendar month in tenant time, as
    ``[start, end)`` instants."""
    local = now.astimezone(tz).date()
    monday = local - timedelta(days=local.weekday())
    first = local.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)

    def at(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=tz)

    return {
        "day": (at(local), at(local + timedelta(days=1))),
        "week": (at(monday), at(monday + timedelta(days=7))),
        "month": (at(first), at(next_month)),
    }


def member_point_totals(*, tenant: Tenant, member: Member) -> dict[str, Any]:
    """The member's balance, and ``window_totals``: the net points of every ledger row (earned,
    welcome, code, reversal, adjustment) whose ``occurred_at`` falls in the current day, ISO week and
    calendar month in the tenant's time zone. An event's points count on the day the event occurred,
    welcome points on the day of registration, code points on the day of the redemption, a reversal
    on the day of its refund."""
    windows = point_windows(timezone.now(), ZoneInfo(tenant.timezone))
    totals = member_points(member=member).aggregate(
        total=Sum("points"),
        **{
            period: Sum("points", filter=Q(occurred_at__gte=start, occurred_at__lt=end))
            for period, (start, end) in windows.items()
        },
    )
    return {
        "total": totals["total"] or 0,
        "window_totals": {period: totals[period] or 0 for period in windows},
    }


def quote_event_points(
    *, tenant: Tenant, member: Member, event: PointEvent, assignments: list[MemberTierAssignment]
) -> tuple[Award, ...]:
    """What an event would earn now, at the member's current tiers and with the cap buckets and pools
    as they stand, without recording anything (``POST /member/{id}/points/calculate``)."""

    rules, mods, policy = point_specs(tenant=tenant)
    tz = ZoneInfo(tenant.timezone)
    names = capped_bucket_names(rules, policy, bucket_keys(event.occurred_at, tz))
    stored = dict(PointBucket.objects.filter(member=member, key__in=names.values()).values_list("key", "total"))
    used = {name: stored[key] for name, key in names.items() if key in stored}
    for pk, pool_used in PointModifier.objects.filter(pk__in=[m.id for m in mods]).values_list("pk", "pool_used"):
        used[f"pool:{pk}"] = pool_used
    return calculate(
        rules=rules,
        modifiers=mods,
        event=event,
        tier_multipliers={a.tier_type_id: a.tier.point_multiplier for a in assignments},
        held_tier_ids=frozenset(a.tier_id for a in assignments),
        policy=policy,
        used=used,
        tz=tz,
    )

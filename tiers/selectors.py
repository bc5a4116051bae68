"""Tier reads, always within one tenant."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from members.models import Member
from tenancy.models import Tenant
from tiers.models import MemberTierAssignment, MemberTierChange, PromotionRule, Tier, TierType
from tiers.types import AssignmentSnapshot, Claim, CriterionSpec, MemberSnapshot, RuleSpec, TierSpec, TierTypeSpec


def tier_types(*, tenant: Tenant) -> QuerySet[TierType]:
    return TierType.objects.filter(tenant=tenant)


def tiers(*, tenant: Tenant) -> QuerySet[Tier]:
    return Tier.objects.filter(tenant=tenant).select_related("tier_type")


def promotion_rules(*, tenant: Tenant) -> QuerySet[PromotionRule]:
    return PromotionRule.objects.filter(tenant=tenant).select_related("tier_type", "target_tier")


def tier_type_by_code(*, tenant: Tenant, code: str) -> TierType | None:
    return TierType.objects.filter(tenant=tenant, code=code).first()


def tier_by_codes(*, tenant: Tenant, tier_type: TierType, code: str) -> Tier | None:
    return Tier.objects.filter(tenant=tenant, tier_type=tier_type, code=code).select_related("tier_type").first()


# --- engine snapshots -----------------------------------------------------------------------------
_SPEC_CACHE: dict[tuple[int, int], tuple[TierTypeSpec, ...]] = {}


def tier_type_specs(*, tenant: Tenant) -> tuple[TierTypeSpec, ...]:
    """The tenant's active tier types as engine snapshots, cached in-process per ``config_version``
    (any configuration save bumps it, so an admin change is live on the next request)."""
    key = (tenant.pk, tenant.config_version)
    cached = _SPEC_CACHE.get(key)
    if cached is not None:
        return cached
    types = list(TierType.objects.filter(tenant=tenant, active=True).order_by("-priority", "id"))
    specs = build_tier_type_specs(
        types,
        Tier.objects.filter(tier_type__in=types),
        PromotionRule.objects.filter(tier_type__in=types, status=PromotionRule.Status.ACTIVE),
    )
    if len(_SPEC_CACHE) > 256:
        _SPEC_CACHE.clear()
    _SPEC_CACHE[key] = specs
    return specs


def build_tier_type_specs(
    types: Iterable[TierType], tiers: Iterable[Tier], rules: Iterable[PromotionRule]
) -> tuple[TierTypeSpec, ...]:
    """Engine snapshots of ``types`` (in the order given) with the given tiers and rules — the live
    configuration, or a simulation scenario's (draft rules in, active ones out). A type without tiers
    is left out."""
    types = list(types)
    tiers_by_type: dict[int, list[TierSpec]] = {t.pk: [] for t in types}
    for tier in tiers:
        if tier.tier_type_id in tiers_by_type:
            tiers_by_type[tier.tier_type_id].append(tier_spec(tier))
    rules_by_type: dict[int, list[RuleSpec]] = {t.pk: [] for t in types}
    for rule in rules:
        if rule.tier_type_id in rules_by_type:
            rules_by_type[rule.tier_type_id].append(rule_spec(rule))
    return tuple(
        TierTypeSpec(
            id=t.pk,
            code=t.code,
            tiers=tuple(tiers_by_type[t.pk]),
            rules=tuple(rules_by_type[t.pk]),
            mode=t.mode,
            qualification=t.qualification,
            window_days=t.window_days,
            validity=t.validity,
            validity_days=t.validity_days,
            grace_days=t.grace_days,
            demotion_step=t.demotion_step,
            product=t.product,
            partner=t.partner,
        )
        for t in types
        if tiers_by_type[t.pk]
    )


def tier_spec(tier: Tier) -> TierSpec:
    return TierSpec(
        id=tier.pk,
        code=tier.code,
        rank=tier.rank,
        is_default=tier.is_default,
        climbable=tier.climbable,
        immutable=tier.immutable,
        available_from=tier.available_from,
        available_until=tier.available_until,
    )


def rule_spec(rule: PromotionRule) -> RuleSpec:
    """A promotion rule as the engine reads it; a draft included by a scenario counts as active."""
    return RuleSpec(
        id=rule.pk,
        code=rule.code,
        direction=rule.direction,
        target_tier_id=rule.target_tier_id,
        criteria=tuple(CriterionSpec(**c) for c in rule.criteria),
        combinator=rule.combinator,
        priority=rule.priority,
        status=PromotionRule.Status.ACTIVE,
        effective_from=rule.effective_from,
        effective_until=rule.effective_until,
    )


def assignment_snapshot(assignment: MemberTierAssignment) -> AssignmentSnapshot:
    return AssignmentSnapshot(
        tier_id=assignment.tier_id,
        since=assignment.since,
        enrolled_at=assignment.enrolled_at,
        source=assignment.source,
        lock_until=assignment.lock_until,
        expires_at=assignment.expires_at,
        granted=tuple(Claim.from_dict(c) for c in assignment.granted_claims or ()),
        claims_void_before=assignment.claims_void_before,
        last_rule_demotion_at=assignment.last_rule_demotion_at,
    )


def member_snapshot(member: Member) -> MemberSnapshot:
    return MemberSnapshot(
        registered_at=member.registered_at, attributes=member.attributes or {}, last_event_at=member.last_event_at
    )


@dataclass(frozen=True)
class HeldAt:
    """A member's position in one tier type at a past instant, read from the tier history. The fields
    are those of :class:`MemberTierAssignment` that the history keeps: ``valid_until``, ``lock_until``
    and ``expires_at`` as recorded by the change that put the member there (a later extension of
    ``valid_until`` by qualifying activity is not a change and is not in the history)."""

    tier_type: TierType
    tier: Tier
    since: datetime
    valid_until: datetime | None
    source: str
    lock_until: datetime | None
    expires_at: datetime | None

    @property
    def tier_type_id(self) -> int:
        return self.tier_type.pk


def tiers_held_at(*, tenant: Tenant, member: Member, at: datetime) -> list[HeldAt]:
    """The tiers ``member`` held at ``at`` (time travel, API.md): per tier type, the latest change at or
    before ``at`` (none, or a removal: nothing held); ``since`` is when the member entered that tier.
    One query; tier types in the order of ``GET .../tier``."""
    changes = (
        MemberTierChange.objects.filter(tenant=tenant, member=member, at__lte=at)
        .select_related("tier_type", "to_tier")
        .order_by("tier_type_id", "-at", "-id")
    )
    by_type: dict[int, list[MemberTierChange]] = {}
    for change in changes:
        by_type.setdefault(change.tier_type_id, []).append(change)  # newest first
    latest = {tier_type_id: rows[0] for tier_type_id, rows in by_type.items()}
    since = {tier_type_id: _entered(rows) for tier_type_id, rows in by_type.items()}
    held = [
        HeldAt(
            tier_type=change.tier_type,
            tier=change.to_tier,
            since=since[tier_type_id],
            valid_until=change.valid_until,
            source=change.source,
            lock_until=change.lock_until,
            expires_at=change.expires_at,
        )
        for tier_type_id, change in latest.items()
        if change.to_tier is not None
    ]
    return sorted(held, key=lambda h: (-h.tier_type.priority, h.tier_type_id))


def _entered(newest_first: list[MemberTierChange]) -> datetime:
    """When the member entered the tier the newest change left them on: the latest change into it
    from elsewhere (changes that kept the tier, e.g. a new lock, do not restart ``since``)."""
    tier_id = newest_first[0].to_tier_id
    entered = newest_first[0].at
    for change in newest_first:
        if change.to_tier_id != tier_id:
            break
        entered = change.at
        if change.from_tier_id != tier_id:
            break
    return entered

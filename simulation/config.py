"""The configuration a replay runs under: the tenant's live program, or the live program changed by a
scenario (its draft rules and modifiers in, the excluded ones out, tier multipliers overridden), as
the pure engines read it. Built with the same spec builders live evaluation uses."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from benefits.engine import BenefitSpec, TierMappingSpec
from benefits.grants import benefit_catalog
from benefits.models import TierBenefitMapping
from points.models import ConfigStatus, PointConversionRule, PointModifier, PointPolicy
from points.selectors import conversion_rule_spec, modifier_spec, policy_spec
from points.types import ConversionRuleSpec, ModifierSpec, Policy
from simulation.models import Scenario
from tenancy.models import Tenant
from tiers.models import PromotionRule, Tier, TierType
from tiers.selectors import build_tier_type_specs
from tiers.types import TierTypeSpec


@dataclass(frozen=True)
class Program:
    """Everything the engines need to evaluate any member of one tenant."""

    tier_types: tuple[TierTypeSpec, ...]
    point_rules: tuple[ConversionRuleSpec, ...]
    modifiers: tuple[ModifierSpec, ...]
    policy: Policy
    tier_multipliers: dict[int, Decimal]  # tier id → point multiplier
    tz: ZoneInfo
    tenant: Tenant | None = None  # read for its time zone by metric contributions (replays need it)
    point_value: Decimal = Decimal(0)
    benefits: Mapping[int, BenefitSpec] = field(default_factory=dict)
    benefit_mappings: tuple[TierMappingSpec, ...] = ()
    type_priority: Mapping[int, int] = field(default_factory=dict)

    def tier_type(self, tier_type_id: int) -> TierTypeSpec | None:
        return next((t for t in self.tier_types if t.id == tier_type_id), None)


def _chosen(status: str, pk: int, include: set[int], exclude: set[int]) -> bool:
    """Active and not excluded, or a draft the scenario includes."""
    return (status == ConfigStatus.ACTIVE or pk in include) and pk not in exclude


def program(tenant: Tenant, scenario: Scenario | None = None) -> Program:
    """The live program, or as ``scenario`` would make it (a constant number of queries)."""
    include: dict[str, set[int]] = {k: set() for k in ("promotion", "point", "modifier")}
    exclude: dict[str, set[int]] = {k: set() for k in ("promotion", "point", "modifier")}
    overrides: dict[int, Decimal] = {}
    if scenario is not None:
        include["promotion"] = set(scenario.include_promotion_rules.values_list("pk", flat=True))
        exclude["promotion"] = set(scenario.exclude_promotion_rules.values_list("pk", flat=True))
        include["point"] = set(scenario.include_point_rules.values_list("pk", flat=True))
        exclude["point"] = set(scenario.exclude_point_rules.values_list("pk", flat=True))
        include["modifier"] = set(scenario.include_modifiers.values_list("pk", flat=True))
        exclude["modifier"] = set(scenario.exclude_modifiers.values_list("pk", flat=True))
        overrides = dict(scenario.tier_overrides.values_list("tier_id", "point_multiplier"))
    types = list(TierType.objects.filter(tenant=tenant, active=True).order_by("-priority", "id"))
    tiers = list(Tier.objects.filter(tenant=tenant))  # multipliers of every tier; specs of active types
    promotion = [
        r
        for r in PromotionRule.objects.filter(tenant=tenant, tier_type__in=types).exclude(
            status=PromotionRule.Status.ARCHIVED
        )
        if (r.status == PromotionRule.Status.ACTIVE or r.pk in include["promotion"])
        and r.pk not in exclude["promotion"]
    ]
    point_rules = [
        r
        for r in PointConversionRule.objects.filter(tenant=tenant).exclude(status=ConfigStatus.ARCHIVED)
        if _chosen(r.status, r.pk, include["point"], exclude["point"])
    ]
    modifiers = [
        m
        for m in PointModifier.objects.filter(tenant=tenant)
        .exclude(status=ConfigStatus.ARCHIVED)
        .prefetch_related("rules", "tiers")
        if _chosen(m.status, m.pk, include["modifier"], exclude["modifier"])
    ]
    stored = PointPolicy.objects.filter(tenant=tenant).first()
    return Program(
        tier_types=build_tier_type_specs(types, tiers, promotion),
        point_rules=tuple(conversion_rule_spec(r) for r in point_rules),
        modifiers=tuple(modifier_spec(m) for m in modifiers),
        policy=policy_spec(stored),
        tier_multipliers={t.pk: overrides.get(t.pk, t.point_multiplier) for t in tiers},
        tz=ZoneInfo(tenant.timezone),
        tenant=tenant,
        point_value=stored.point_value if stored else Decimal(0),
        benefits=benefit_catalog(tenant),
        benefit_mappings=tuple(
            TierMappingSpec(m.tier_id, m.tier.tier_type_id, m.tier.rank, m.benefit_id, m.inheritable, m.tier.code)
            for m in TierBenefitMapping.objects.filter(tenant=tenant).select_related("tier")
        ),
        type_priority={t.pk: t.priority for t in types},
    )

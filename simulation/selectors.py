"""Reads of the simulation context, tenant explicit."""

from dataclasses import replace

from django.db import models
from django.db.models import QuerySet

from points.models import ConfigStatus, PointConversionRule, PointModifier
from points.selectors import conversion_rule_spec, modifier_spec
from simulation.config import Program, program
from simulation.models import AffectedMember, Scenario, SimulationRun
from simulation.validation import (
    CONVERSION_RULE,
    MODIFIER,
    PROMOTION_RULE,
    TIER,
    TIER_TYPE,
    Issue,
    validate,
)
from tenancy.models import Tenant
from tiers.models import PromotionRule, Tier, TierType
from tiers.selectors import rule_spec

SCENARIO_RELATIONS = (
    "include_promotion_rules",
    "exclude_promotion_rules",
    "include_point_rules",
    "exclude_point_rules",
    "include_modifiers",
    "exclude_modifiers",
    "tier_overrides",
)


def scenarios(*, tenant: Tenant) -> QuerySet[Scenario]:
    """The tenant's scenarios, latest change first, with what each names loaded in a constant number
    of queries."""
    return Scenario.objects.filter(tenant=tenant).prefetch_related(*SCENARIO_RELATIONS)


def get_scenario(*, tenant: Tenant, scenario_id: int) -> Scenario | None:
    """One of the tenant's scenarios (another tenant's id: None)."""
    return scenarios(tenant=tenant).filter(pk=scenario_id).first()


# --- static validation (DOMAIN §9) ----------------------------------------------------------------
KIND_OF: dict[type[models.Model], str] = {
    TierType: TIER_TYPE,
    Tier: TIER,
    PromotionRule: PROMOTION_RULE,
    PointConversionRule: CONVERSION_RULE,
    PointModifier: MODIFIER,
}


def validation_issues(*, tenant: Tenant, scenario: Scenario | None = None) -> list[Issue]:
    """The issues of the tenant's live program, or of the program ``scenario`` would make live."""
    return validate(program(tenant, scenario))


def issues_about(*, tenant: Tenant, obj: models.Model) -> list[Issue]:
    """The issues of the live program that concern ``obj`` (a tier type, tier, promotion rule,
    conversion rule or modifier of ``tenant``). A draft rule or modifier is judged as if it were live
    beside the active configuration: what would go wrong if it were activated."""
    kind = KIND_OF[type(obj)]
    return [i for i in validate(_with_draft(program(tenant), obj)) if i.concerns(kind, obj.pk)]


def _with_draft(live: Program, obj: models.Model) -> Program:
    if isinstance(obj, PromotionRule) and obj.status == PromotionRule.Status.DRAFT:
        spec = rule_spec(obj)
        return replace(
            live,
            tier_types=tuple(
                replace(t, rules=(*t.rules, spec)) if t.id == obj.tier_type_id else t for t in live.tier_types
            ),
        )
    if isinstance(obj, PointConversionRule) and obj.status == ConfigStatus.DRAFT:
        return replace(live, point_rules=(*live.point_rules, conversion_rule_spec(obj)))
    if isinstance(obj, PointModifier) and obj.status == ConfigStatus.DRAFT:
        return replace(live, modifiers=(*live.modifiers, modifier_spec(obj)))
    return live


def simulation_runs(*, tenant: Tenant) -> QuerySet[SimulationRun]:
    """The tenant's backtests, latest first."""
    return SimulationRun.objects.filter(tenant=tenant).select_related("scenario", "tier_type")


def affected_members(*, run: SimulationRun) -> QuerySet[AffectedMember]:
    """The members a run found affected, in the order they were found."""
    return AffectedMember.objects.filter(run=run).order_by("id")

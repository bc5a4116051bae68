"""Reads of the simulation context, tenant explicit."""

from django.db.models import QuerySet

from simulation.models import Scenario
from tenancy.models import Tenant

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

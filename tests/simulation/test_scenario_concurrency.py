"""Publishing under concurrency (PostgreSQL row locks): the scenario row is locked first, so of many
simultaneous publishes exactly one makes the changes and bumps ``config_version``; the others are 409
``scenario_published`` and change nothing."""

from typing import Any

import pytest

from audit.models import AuditEntry
from simulation.models import Scenario
from simulation.scenarios import ScenarioChanges, ScenarioPublished, publish_scenario, save_scenario
from tests.concurrency import race
from tests.helpers import config_version
from tests.simulation.scenario_plan import scenario_body
from tiers.models import PromotionRule

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_five_simultaneous_publishes_make_one_change(tenant, plan):
    scenario = save_scenario(tenant=tenant, scenario=Scenario(), data=scenario_body(plan), actor="x")
    version = config_version(tenant)

    def work(index: int) -> Any:
        return publish_scenario(tenant=tenant, scenario=Scenario.objects.get(pk=scenario.pk), actor=f"admin-{index}")

    results = race(5, work)

    assert sorted(type(r).__name__ for r in results) == ["ScenarioChanges"] + ["ScenarioPublished"] * 4
    assert sum(isinstance(r, ScenarioChanges) for r in results) == 1
    assert all(isinstance(r, ScenarioChanges | ScenarioPublished) for r in results)
    assert config_version(tenant) == version + 1
    assert AuditEntry.objects.filter(action="scenario.published").count() == 1
    assert AuditEntry.objects.filter(action="promotionrule.updated").count() == 2
    assert PromotionRule.objects.get(pk=plan["draft_rule"].pk).status == "active"

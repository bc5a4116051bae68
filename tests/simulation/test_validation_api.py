"""GET /api/v1/simulation/validate (API.md "Wave 2 contract"): the issues of the live program, or of the
program a scenario would make live; admin scope; another tenant's scenario is a 404."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from points.models import PointConversionRule
from simulation.models import Scenario
from tests.factories import PromotionRuleFactory, hotel_ladder
from tests.helpers import assert_problem, validation_errors

URL = "/api/v1/simulation/validate"


def ref(kind: str, obj: Any) -> dict[str, Any]:
    return {"kind": kind, "id": obj.pk, "code": obj.code}


@pytest.fixture
def crafted(tenant: Any) -> dict[str, Any]:
    """Acme's hotel ladder (gold at 25 nights, platinum not climbable) with silver asking 30 nights, a
    demotion rule to the top tier, a per-event rule above its cap, and a draft silver rule at 10 nights."""
    tier_type, tiers, gold_rule = hotel_ladder(tenant)
    nights = [{"metric": "quantity:nights", "operator": "gte", "value": 30, "window_days": None}]
    silver_rule = PromotionRuleFactory(
        tier_type=tier_type, target_tier=tiers["silver"], code="silver-30", criteria=nights
    )
    demotion = PromotionRuleFactory(
        tier_type=tier_type,
        target_tier=tiers["platinum"],
        code="drop-to-platinum",
        direction="demotion",
        criteria=[{"metric": "days_inactive", "operator": "gte", "value": 180, "window_days": None}],
    )
    draft = PromotionRuleFactory(
        tier_type=tier_type,
        target_tier=tiers["silver"],
        code="silver-10",
        status="draft",
        criteria=[{"metric": "quantity:nights", "operator": "gte", "value": 10, "window_days": None}],
    )
    welcome = PointConversionRule.objects.create(
        tenant=tenant, code="stay-bonus", base="per_event", points_per_unit=50, cap_per_event=40
    )
    return {
        "type": tier_type,
        "tiers": tiers,
        "gold": gold_rule,
        "silver": silver_rule,
        "demotion": demotion,
        "draft": draft,
        "welcome": welcome,
    }


def test_live_program_issues_exactly(api: Any, crafted: dict[str, Any]) -> None:
    hotel, tiers = ref("tier_type", crafted["type"]), crafted["tiers"]
    response = api.get(URL)
    assert response.status_code == 200
    assert response.json() == {
        "issues": [
            {
                "severity": "error",
                "code": "demotion_points_up",
                "message": "The demotion rule 'drop-to-platinum' of 'hotel' moves members to 'platinum', the highest "
                "tier: from every tier it applies to, that is up or sideways, so it never demotes anyone. Point it "
                "to a lower tier, or leave the target empty to step down one tier.",
                "objects": [hotel, ref("promotion_rule", crafted["demotion"]), ref("tier", tiers["platinum"])],
            },
            {
                "severity": "warning",
                "code": "thresholds_not_rising",
                "message": "In 'hotel', tier 'gold' (rank 3) is reached with nights ≥ 25 (rule "
                "'hotel-gold-by-nights'), which is not more than the lower tier 'silver' (rank 2) asks: nights ≥ 30 "
                "(rule 'silver-30'). "
                "Members would reach 'gold' no later than 'silver'. Raise the threshold of the higher tier or lower "
                "the other.",
                "objects": [
                    hotel,
                    ref("tier", tiers["silver"]),
                    ref("tier", tiers["gold"]),
                    ref("promotion_rule", crafted["silver"]),
                    ref("promotion_rule", crafted["gold"]),
                ],
            },
            {
                "severity": "warning",
                "code": "cap_below_award",
                "message": "The point rule 'stay-bonus' gives 50 points for each event, but its cap per event 40 is "
                "lower: every such event is cut to the cap. Raise the cap or lower the rule's points.",
                "objects": [ref("conversion_rule", crafted["welcome"])],
            },
        ]
    }


def test_scenario_program_issues(api: Any, tenant: Any, crafted: dict[str, Any]) -> None:
    """The draft silver rule at 10 nights in, the 30-night one out, the demotion rule out: only the cap stays."""
    scenario = Scenario.objects.create(tenant=tenant, code="fix-silver", name="Fix silver")
    scenario.include_promotion_rules.add(crafted["draft"])
    scenario.exclude_promotion_rules.add(crafted["silver"], crafted["demotion"])
    response = api.get(URL, {"scenario": scenario.pk})
    assert response.status_code == 200
    assert [(i["code"], [o["code"] for o in i["objects"]]) for i in response.json()["issues"]] == [
        ("cap_below_award", ["stay-bonus"])
    ]


def test_clean_program_has_no_issues(api: Any, tenant: Any) -> None:
    """A ladder every climbable tier of which a rising rule reaches; an empty ``scenario=`` is no scenario."""
    tier_type, tiers, _ = hotel_ladder(tenant)
    PromotionRuleFactory(
        tier_type=tier_type,
        target_tier=tiers["silver"],
        code="silver-10",
        criteria=[{"metric": "quantity:nights", "operator": "gte", "value": 10, "window_days": None}],
    )
    with CaptureQueriesContext(connection) as queries:
        response = api.get(URL, {"scenario": ""})
    assert response.json() == {"issues": []}
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert writes == []


def test_needs_a_token(client: Any, crafted: dict[str, Any]) -> None:
    assert_problem(client.get(URL), 401, "not_authenticated")


@pytest.mark.parametrize("scope", ["privilege:read", "privilege:write privilege:audit"])
def test_needs_admin_scope(api_client_for: Any, tenant: Any, scope: str) -> None:
    assert_problem(api_client_for(tenant, scope=scope).get(URL), 403, "insufficient_scope")


def test_another_tenants_scenario_is_not_found(api: Any, other_tenant: Any, crafted: dict[str, Any]) -> None:
    theirs = Scenario.objects.create(tenant=other_tenant, code="theirs", name="Theirs")
    assert_problem(api.get(URL, {"scenario": theirs.pk}), 404, "not_found")
    assert_problem(api.get(URL, {"scenario": theirs.pk + 1000}), 404, "not_found")


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_bad_scenario_parameter(api: Any, crafted: dict[str, Any], value: str) -> None:
    assert list(validation_errors(api.get(URL, {"scenario": value}))) == ["scenario"]

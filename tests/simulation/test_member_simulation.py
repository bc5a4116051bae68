"""GET/POST /api/v1/simulation/member/{id}: the engine's verdict now, with hypothetical events and/or a
scenario, with progress — and not one row of any table changed, no outbox message written."""

import pytest
from django.apps import apps

from config.api import SCOPE_READ
from simulation.models import Scenario
from tests.factories import PromotionRuleFactory
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db
URL = "/api/v1/simulation/member"


def _database() -> dict[str, list]:
    """Every row of every table (what a simulation must leave exactly as it was)."""
    return {m._meta.db_table: list(m.objects.order_by("pk").values()) for m in apps.get_models() if m._meta.managed}


def _stay(nights: int, n: int) -> dict:
    return {
        "event_id": f"stay-{n}",
        "type": "transaction",
        "amount": "500.00",
        "quantities": {"nights": nights, "stays": 1},
    }


def test_get_tells_the_tier_now_with_progress_and_writes_nothing(api, ann):
    before = _database()
    response = api.get(f"{URL}/ann")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["member_id"], body["scenario"], body["writes"], body["events"]) == ("ann", None, 0, [])
    (hotel,) = body["tiers"]
    assert (hotel["tier_type"], hotel["tier"], hotel["source"]) == ("hotel", "member", "auto")
    assert hotel["progress"]["next_tier"] == "gold"
    assert _database() == before


def test_post_with_hypothetical_events_promotes_in_the_answer_only(api, ann, ladder):
    before = _database()
    events = [{**_stay(5, n), "quantities": {"nights": 5, "stays": 3}} for n in range(5)]
    response = api.post(f"{URL}/ann", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [t["tier"] for t in body["tiers"]] == ["gold"]
    assert [e["event_id"] for e in body["events"]] == [f"stay-{n}" for n in range(5)]
    assert body["events"][-1]["tier_changes"] == [{"tier_type": "hotel", "from": "member", "to": "gold"}]
    assert all(e["tier_changes"] == [] for e in body["events"][:-1])
    assert body["points"] == {"total": 0}  # the ladder has no point rules
    assert _database() == before


def test_a_scenario_applies_as_if_published_now(api, ann, ladder):
    tier_type, tiers, _ = ladder
    easy = PromotionRuleFactory(
        tier_type=tier_type,
        target_tier=tiers["silver"],
        code="silver-by-1-night",
        status="draft",
        criteria=[{"metric": "quantity:nights", "operator": "gte", "value": 1, "window_days": None}],
    )
    scenario = Scenario.objects.create(tenant=tier_type.tenant, code="easy", name="Easy silver")
    scenario.include_promotion_rules.add(easy)
    body = api.post(f"{URL}/ann", {"events": [_stay(1, 1)], "scenario": scenario.pk}, format="json").json()
    assert [t["tier"] for t in body["tiers"]] == ["silver"]
    assert body["scenario"] == scenario.pk
    live = api.post(f"{URL}/ann", {"events": [_stay(1, 1)]}, format="json").json()
    assert [t["tier"] for t in live["tiers"]] == ["member"]


def test_bad_input_foreign_ids_and_scopes(api, ann, other_tenant, api_client_for, tenant):
    theirs = Scenario.objects.create(tenant=other_tenant, code="theirs", name="Theirs")
    assert_problem(api.get(f"{URL}/ann?scenario={theirs.pk}"), 404, "not_found")
    assert_problem(api.get(f"{URL}/ann?scenario=x"), 422, "validation_error")
    body = assert_problem(api.post(f"{URL}/ann", {"scenario": theirs.pk}, format="json"), 422, "validation_error")
    assert set(body["errors"]) == {"scenario"}
    assert_problem(api.get(f"{URL}/nobody"), 404, "member_not_found")
    refund = {"event_id": "r1", "type": "refund", "amount": "5.00", "refund_of": "never"}
    body = assert_problem(api.post(f"{URL}/ann", {"events": [refund]}, format="json"), 422, "validation_error")
    assert set(body["errors"]) == {"events[0].refund_of"}
    assert_problem(api.post(f"{URL}/ann", {"events": "many"}, format="json"), 422, "validation_error")
    reader = api_client_for(tenant, scope=SCOPE_READ)
    assert reader.get(f"{URL}/ann").status_code == 200
    assert_problem(reader.post(f"{URL}/ann", {}, format="json"), 403, "insufficient_scope")
    assert api.__class__().get(f"{URL}/ann").status_code == 401
    outsider = api_client_for(other_tenant)
    assert_problem(outsider.get(f"{URL}/ann"), 404, "member_not_found")

"""Program backtests (POST /api/v1/simulation/run) and the kernel's promise that a prediction is the
outcome: simulate a scenario, publish it, re-evaluate the members, and the live tiers are the
predicted ones, member by member."""

import csv
import io
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from config.api import SCOPE_READ, SCOPE_WRITE
from events.evaluation import evaluate_member_now
from members.models import Member
from simulation.config import program
from simulation.kernel import replay
from simulation.loader import chunks, histories
from simulation.models import AffectedMember, Scenario, SimulationRun
from simulation.scenarios import publish_scenario, save_scenario
from tests.factories import PromotionRuleFactory
from tests.helpers import assert_problem
from tests.simulation.program import build_program, populate
from tiers.models import MemberTierAssignment

pytestmark = pytest.mark.django_db
URL = "/api/v1/simulation/run"


@pytest.fixture
def filled(tenant):
    """Acme with the generated two-ladder program, 40 members, and a scenario putting Gold at 8 nights."""
    made = build_program(tenant)
    populate(tenant, made, members=40, seed=11)
    gold = made["tiers"].get(tier_type=made["hotel"], code="gold")
    easy = PromotionRuleFactory(
        tier_type=made["hotel"],
        target_tier=gold,
        code="gold-at-8",
        status="draft",
        priority=5,
        criteria=[{"metric": "quantity:nights", "operator": "gte", "value": 8, "window_days": None}],
    )
    none = {"include": [], "exclude": []}
    scenario = save_scenario(
        tenant=tenant,
        scenario=Scenario(),
        data={
            "code": "gold-8",
            "name": "Gold at 8 nights",
            "promotion_rules": {"include": [easy.pk], "exclude": []},
            "point_rules": none,
            "modifiers": none,
            "tier_overrides": [],
        },
        actor="test",
    )
    return made, scenario


def _live_tiers(tenant) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for external_id, tier_type_id, tier_id in MemberTierAssignment.objects.filter(tenant=tenant).values_list(
        "member__external_id", "tier_type_id", "tier_id"
    ):
        out.setdefault(external_id, {})[tier_type_id] = tier_id
    return out


def test_prediction_equals_outcome_after_publish_and_re_evaluation(tenant, filled):
    _, scenario = filled
    now = timezone.now()
    baseline, draft = program(tenant), program(tenant, scenario)
    predicted = {}
    for first, last, _ in chunks(tenant, 16):
        for history in histories(tenant, first, last):
            _, outcome = replay(history, baseline, draft, start=now, end=now)
            predicted[history.external_id] = outcome.tiers
    before = _live_tiers(tenant)

    publish_scenario(tenant=tenant, scenario=scenario, actor="test")
    for member in Member.objects.filter(tenant=tenant):
        evaluate_member_now(tenant=tenant, member=member, actor="test")

    after = _live_tiers(tenant)
    assert after == predicted
    assert sum(1 for m in after if after[m] != before[m]) >= 3  # the scenario moved members


def test_a_backtest_through_the_api_reports_the_shift_and_the_members_it_moves(
    api, tenant, filled, eager_tasks, django_capture_on_commit_callbacks
):
    _, scenario = filled
    today = timezone.localdate(timezone=ZoneInfo(tenant.timezone))  # "to" is a tenant day
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            URL, {"scenario": scenario.pk, "from": str(today - timedelta(days=400)), "to": str(today)}, format="json"
        )
    assert response.status_code == 202, response.content
    assert response.json()["url"] == f"{URL}/{response.json()['id']}"
    run = api.get(response.json()["url"]).json()
    assert (run["status"], run["members"], run["progress"]) == ("done", 40, {"done": 1, "total": 1})
    hotel = next(t for t in run["result"]["tier_types"] if t["tier_type"] == "hotel")
    assert list(hotel["baseline"]) == ["member", "silver", "gold", "platinum"]
    assert sum(hotel["baseline"].values()) == sum(hotel["scenario"].values()) == 40
    assert hotel["scenario"]["gold"] > hotel["baseline"]["gold"]
    moved = sum(t["members"] for t in hotel["transitions"])
    assert moved == AffectedMember.objects.filter(run_id=run["id"], tier_type="hotel").count() > 0
    assert {"rule": "gold-at-8", "kind": "promotion", "baseline_hits": 0}.items() <= next(
        r for r in run["result"]["rules"] if r["rule"] == "gold-at-8"
    ).items()
    # gold earns ×1.5 per spend point: more gold members earn more after the fork
    assert run["result"]["points"]["delta"] == run["result"]["points"]["scenario"] - run["result"]["points"]["baseline"]

    page = api.get(f"{URL}/{run['id']}/members").json()
    assert page["count"] == AffectedMember.objects.filter(run_id=run["id"]).count()
    assert set(page["results"][0]) == {"member_id", "tier_type", "baseline", "scenario", "points_delta"}
    download = api.get(f"{URL}/{run['id']}/members?format=csv")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert len(rows) == page["count"]
    assert rows[0].keys() == {"member_id", "tier_type", "baseline", "scenario", "points_delta"}

    assert_problem(api.post(f"{URL}/{run['id']}/cancel"), 409, "run_finished")


def test_a_run_on_a_tenant_without_members_is_done_with_zeros(
    api, tenant, ladder, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(URL, {"from": "2026-01-01", "to": "2026-06-30"}, format="json")
    run = api.get(response.json()["url"]).json()
    assert run["status"] == "done"
    assert run["members"] == 0
    assert run["result"]["tier_types"] == [
        {
            "tier_type": "hotel",
            "tiers": ["member", "silver", "gold", "platinum"],
            "baseline": {"member": 0, "silver": 0, "gold": 0, "platinum": 0},
            "scenario": {"member": 0, "silver": 0, "gold": 0, "platinum": 0},
            "transitions": [],
        }
    ]
    assert run["result"]["points"] == {"baseline": 0, "scenario": 0, "delta": 0, "liability_delta": "0.00"}


def test_bad_input_is_refused_and_nothing_is_stored(api, tenant, other_tenant, ladder):
    theirs = Scenario.objects.create(tenant=other_tenant, code="theirs", name="Theirs")
    body = assert_problem(
        api.post(URL, {"from": "2026-02-01", "to": "2026-01-01"}, format="json"), 422, "validation_error"
    )
    assert "from" in body["errors"]
    body = assert_problem(
        api.post(URL, {"scenario": theirs.pk, "from": "2026-01-01", "to": "2026-02-01"}, format="json"),
        422,
        "validation_error",
    )
    assert set(body["errors"]) == {"scenario"}
    assert_problem(api.post(URL, {"from": "soon", "to": "2026-02-01"}, format="json"), 422, "validation_error")
    assert_problem(api.post(URL, b"{", content_type="application/json"), 400, "malformed_json")
    assert SimulationRun.objects.count() == 0


def test_another_tenants_run_is_404_and_scopes_are_enforced(api, tenant, other_tenant, api_client_for):
    run = SimulationRun.objects.create(tenant=other_tenant, starts="2026-01-01", ends="2026-01-31")
    for path in (f"{URL}/{run.pk}", f"{URL}/{run.pk}/members"):
        assert_problem(api.get(path), 404, "not_found")
    assert_problem(api.post(f"{URL}/{run.pk}/cancel"), 404, "not_found")
    narrow = api_client_for(tenant, scope=f"{SCOPE_READ} {SCOPE_WRITE}")
    assert_problem(
        narrow.post(URL, {"from": "2026-01-01", "to": "2026-01-31"}, format="json"), 403, "insufficient_scope"
    )
    assert_problem(narrow.get(f"{URL}/{run.pk}"), 403, "insufficient_scope")
    anonymous = api.__class__()
    assert anonymous.post(URL, {}, format="json").status_code == 401
    assert SimulationRun.objects.filter(tenant=tenant).count() == 0


def test_cancelling_a_queued_run_stops_it(api, tenant):
    run = SimulationRun.objects.create(tenant=tenant, starts="2026-01-01", ends="2026-01-31")
    response = api.post(f"{URL}/{run.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.finished_at is not None

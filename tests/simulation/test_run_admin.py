"""The simulation pages of the admin: a scenario's "Validate" and "Run simulation", the runs' list, and
the run page (progress, cancel, error, and the result as charts and tables a business admin reads),
its status JSON and CSV. Another tenant's run is "not found"."""

import csv
import io
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from simulation.models import AffectedMember, Scenario, SimulationRun
from simulation.scenarios import save_scenario
from tests.factories import PromotionRuleFactory, TenantMembershipFactory, TierTypeFactory, UserFactory
from tests.simulation.program import build_program, populate

pytestmark = pytest.mark.django_db

RESULT = {
    "members": 1200,
    "events": 34567,
    "tier_types": [
        {
            "tier_type": "hotel",
            "tiers": ["member", "silver", "gold", "platinum"],
            "baseline": {"member": 700, "silver": 300, "gold": 150, "platinum": 50},
            "scenario": {"member": 640, "silver": 310, "gold": 200, "platinum": 50},
            "transitions": [
                {"from": "silver", "to": "gold", "members": 50},
                {"from": "member", "to": "silver", "members": 60},
            ],
        }
    ],
    "points": {"baseline": 910000, "scenario": 955000, "delta": 45000, "liability_delta": "450.00"},
    "benefits": {"granted_delta": {"late-checkout": 50, "welcome-drink": -4}},
    "rules": [{"rule": "gold-at-8", "kind": "promotion", "baseline_hits": 0, "scenario_hits": 50}],
}


def run_url(run: SimulationRun, view: str = "change") -> str:
    return reverse(f"admin:simulation_simulationrun_{view}", args=[run.pk])


def text(response: Any) -> str:
    """The page as a person reads it: tags dropped, whitespace squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def staff(tenant: Any) -> Any:
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="simulation"))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def logged_in(client: Any, staff: Any) -> Any:
    client.force_login(staff)
    return client


@pytest.fixture
def scenario(tenant: Any) -> Scenario:
    return Scenario.objects.create(tenant=tenant, code="gold-8", name="Gold at 8 nights")


@pytest.fixture
def done(tenant: Any, scenario: Scenario) -> SimulationRun:
    run = SimulationRun.objects.create(
        tenant=tenant,
        scenario=scenario,
        starts="2026-01-01",
        ends="2026-06-30",
        status=SimulationRun.Status.DONE,
        chunks_total=2,
        chunks_done=2,
        members_total=1200,
        members_done=1200,
        events=34567,
        result=RESULT,
        requested_by="user:anna",
        started_at=timezone.now() - timedelta(seconds=125),
        finished_at=timezone.now(),
    )
    AffectedMember.objects.bulk_create(
        [
            AffectedMember(
                tenant=tenant, run=run, member_id=f"M-{i:03}", tier_type="hotel", baseline="silver", scenario="gold"
            )
            for i in range(60)
        ]
        + [AffectedMember(tenant=tenant, run=run, member_id="M-PTS", points_delta=-120)]
    )
    return run


def test_run_page_shows_the_result_as_a_business_admin_reads_it(logged_in, done):
    response = logged_in.get(run_url(done))

    assert response.status_code == 200
    page = text(response)
    assert "Gold at 8 nights" in page
    assert "Finished" in page
    assert "100% — 1,200 of 1,200 members, took 2 min 5 s" in page
    # the at-a-glance figures
    assert "Members 1,200" in page
    assert "Events replayed 34,567" in page
    assert "Members who change tier 110" in page
    assert "Points change +45,000" in page
    assert "Liability change +450.00 USD" in page
    # tier distribution: a grouped bar chart (inline SVG) and its numbers
    html = response.content.decode()
    assert html.count('class="pygal-chart"') == 2  # the tier chart and the points chart
    assert "Now (live rules)" in html
    assert "With the scenario" in html
    assert "member 700 640 -60" in page
    assert "silver 300 310 +10" in page
    assert "gold 150 200 +50" in page
    assert "platinum 50 50 0" in page
    # the migration matrix: rows now, columns with the scenario; diagonal = kept their tier
    assert "110 members change tier" in page
    assert "member 640 60 · · 700" in page
    assert "silver · 250 50 · 300" in page
    assert "gold · · 150 · 150" in page
    # points, benefits, rules
    assert "Points now 910,000" in page
    assert "Points with the scenario 955,000" in page
    assert "late-checkout +50" in page
    assert "welcome-drink -4" in page
    assert "gold-at-8 Promotion 0 50 +50" in page
    # affected members: 61 rows, 50 a page, and the CSV
    assert "Affected members (61)" in page
    assert "M-000 hotel silver gold 0" in page
    assert "M-PTS" not in page
    assert "Page 1 of 2" in page
    assert run_url(done, "csv") in html
    # nothing internal: no ids, enum values, raw JSON, no script or style from outside
    assert "kozea" not in html
    assert "cdn" not in html.lower()
    assert '"tier_types"' not in html
    assert "liability_delta" not in html
    assert "user:anna" not in page
    assert "Requested by anna" in page
    assert "Cancel simulation" not in page

    second = text(logged_in.get(run_url(done) + "?page=2"))
    assert "M-PTS — tier unchanged -120" in second
    assert "Page 2 of 2" in second


def test_run_list_shows_words_not_values(logged_in, done, tenant):
    SimulationRun.objects.create(tenant=tenant, starts="2026-02-01", ends="2026-02-28", requested_by="user:anna")
    page = text(logged_in.get(reverse("admin:simulation_simulationrun_changelist")))

    assert "Gold at 8 nights 2026-01-01 to 2026-06-30 Finished 100% (1,200 of 1,200 members) anna" in page
    assert "Live rules (no scenario) 2026-02-01 to 2026-02-28 Waiting to start 0% (0 of 0 members) anna" in page


def test_the_csv_lists_every_affected_member(logged_in, done):
    response = logged_in.get(run_url(done, "csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="simulation-gold-8-2026-01-01-2026-06-30.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 61
    assert rows[0] == {
        "member_id": "M-000",
        "tier_type": "hotel",
        "baseline": "silver",
        "scenario": "gold",
        "points_delta": "0",
    }
    assert rows[-1] == {"member_id": "M-PTS", "tier_type": "", "baseline": "", "scenario": "", "points_delta": "-120"}


def test_another_tenants_run_is_not_found(logged_in, other_tenant):
    theirs = SimulationRun.objects.create(tenant=other_tenant, starts="2026-01-01", ends="2026-01-31")

    for view in ("change", "status", "csv"):
        assert logged_in.get(run_url(theirs, view)).status_code == 404
    assert logged_in.post(run_url(theirs, "cancel")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == SimulationRun.Status.QUEUED
    assert "2026-01-31" not in text(logged_in.get(reverse("admin:simulation_simulationrun_changelist")))


def test_a_running_run_shows_progress_polls_its_status_and_can_be_cancelled(logged_in, tenant, scenario):
    run = SimulationRun.objects.create(
        tenant=tenant,
        scenario=scenario,
        starts="2026-01-01",
        ends="2026-01-31",
        status=SimulationRun.Status.RUNNING,
        chunks_total=4,
        chunks_done=1,
        members_total=8000,
        members_done=2000,
    )
    response = logged_in.get(run_url(run))
    page, html = text(response), response.content.decode()
    assert "Running" in page
    assert "25% — 2,000 of 8,000 members" in page
    assert 'style="width: 25%"' in html
    assert run_url(run, "status") in html  # the script polls it
    assert "Cancel simulation" in page

    status = logged_in.get(run_url(run, "status")).json()
    assert status == {
        "status": "running",
        "label": "Running",
        "percent": 25,
        "members_done": 2000,
        "members_total": 8000,
        "finished": False,
    }

    response = logged_in.post(run_url(run, "cancel"))
    assert response.status_code == 302
    assert response["Location"] == run_url(run)
    assert messages_of(response) == ["The simulation was cancelled."]
    run.refresh_from_db()
    assert run.status == SimulationRun.Status.CANCELLED
    assert run.finished_at is not None
    page = text(logged_in.get(run_url(run)))
    assert "Cancelled" in page
    assert "Cancel simulation" not in page
    assert logged_in.get(run_url(run, "status")).json()["finished"] is True


def test_cancelling_a_finished_run_says_so_and_changes_nothing(logged_in, done):
    response = logged_in.post(run_url(done, "cancel"))

    assert response.status_code == 302
    assert messages_of(response) == ["This simulation has already finished."]
    done.refresh_from_db()
    assert done.status == SimulationRun.Status.DONE


def test_a_failed_run_shows_why(logged_in, tenant):
    run = SimulationRun.objects.create(
        tenant=tenant, starts="2026-01-01", ends="2026-01-31", status="failed", error="OperationalError: gone"
    )
    page = text(logged_in.get(run_url(run)))
    assert "Failed" in page
    assert "The simulation failed: OperationalError: gone" in page
    assert "Cancel simulation" not in page
    assert "At a glance" not in page


# --- the scenario page: Validate and Run simulation ------------------------------------------------
@pytest.fixture
def filled(tenant: Any) -> tuple[dict[str, Any], Scenario]:
    """The generated two-ladder program, 40 members, and a scenario putting Gold at 8 nights."""
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


def test_the_scenario_page_offers_the_run_form_with_the_tenants_tier_types(logged_in, tenant, filled, other_tenant):
    _, scenario = filled
    TierTypeFactory(tenant=other_tenant, code="theirs", name="Theirs")
    response = logged_in.get(reverse("admin:simulation_scenario_change", args=[scenario.pk]))

    form = response.context["run_form"]
    assert [t.code for t in form.fields["tier_type"].queryset] == ["dining", "hotel"]
    today = timezone.localdate(timezone=ZoneInfo(tenant.timezone))
    assert form.initial == {"starts": today - timedelta(days=365), "ends": today}
    page = text(response)
    assert "Run simulation" in page
    assert "All tier types Dining Hotel" in page
    assert reverse("admin:simulation_scenario_run", args=[scenario.pk]) in response.content.decode()


def test_running_a_simulation_from_the_scenario_page(
    logged_in, tenant, filled, eager_tasks, django_capture_on_commit_callbacks
):
    made, scenario = filled
    url = reverse("admin:simulation_scenario_change", args=[scenario.pk])
    assert "Run simulation" in text(logged_in.get(url))
    today = timezone.localdate(timezone=ZoneInfo(tenant.timezone))  # "to" is a tenant day

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(
            reverse("admin:simulation_scenario_run", args=[scenario.pk]),
            {"run-starts": str(today - timedelta(days=400)), "run-ends": str(today), "run-tier_type": made["hotel"].pk},
        )

    run = SimulationRun.objects.get(tenant=tenant)
    assert response.status_code == 302
    assert response["Location"] == run_url(run)
    assert (run.scenario, run.tier_type, run.requested_by, run.status) == (scenario, made["hotel"], "user:anna", "done")
    hotel = run.result["tier_types"][0]
    assert [t["tier_type"] for t in run.result["tier_types"]] == ["hotel"]
    page = text(logged_in.get(run_url(run)))
    assert "Tier type hotel" in page
    assert "Tier type dining" not in page
    for tier, before in hotel["baseline"].items():
        after = hotel["scenario"][tier]
        assert f"{tier} {before} {after} {'+' if after > before else ''}{after - before}" in page
    assert hotel["scenario"]["gold"] > hotel["baseline"]["gold"]
    assert f"Affected members ({AffectedMember.objects.filter(run=run).count()})" in page


def test_a_bad_range_shows_on_the_form_and_starts_nothing(logged_in, scenario):
    response = logged_in.post(
        reverse("admin:simulation_scenario_run", args=[scenario.pk]),
        {"run-starts": "2026-03-01", "run-ends": "2026-02-01"},
    )

    assert response.status_code == 200
    assert response.context["run_form"].errors == {"starts": ["Must not be after 'to'."]}
    assert SimulationRun.objects.count() == 0


def test_another_tenants_scenario_cannot_be_run(logged_in, other_tenant):
    theirs = Scenario.objects.create(tenant=other_tenant, code="theirs", name="Theirs")
    response = logged_in.post(
        reverse("admin:simulation_scenario_run", args=[theirs.pk]),
        {"run-starts": "2026-01-01", "run-ends": "2026-01-31"},
    )
    assert response.status_code == 404
    assert SimulationRun.objects.count() == 0

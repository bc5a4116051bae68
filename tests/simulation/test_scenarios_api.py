"""Scenarios through the API (/api/v1/simulation/scenario): create, list, read, replace, delete.

A scenario names draft objects to include, active ones to exclude and tier multipliers to override;
saving one changes no live configuration (no ``config_version`` bump) and records a fingerprint of
everything it names. Ids that are not the tenant's drafts / active objects / tiers (another tenant's
included: they do not exist here) are a 422 naming the field; a refused write stores and audits nothing.
Another tenant's scenario is a 404.
"""

from typing import Any

import pytest

from audit.models import AuditEntry
from config.api import SCOPE_READ, SCOPE_WRITE
from simulation.models import Scenario, ScenarioTierOverride
from simulation.scenarios import state_hash
from tests.factories import PromotionRuleFactory, hotel_ladder
from tests.helpers import assert_problem, audit_trail, body_without_timestamps, config_version, validation_errors
from tests.simulation.scenario_plan import scenario_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/simulation/scenario"


def _expected(scenario: Scenario, plan: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "id": scenario.pk,
        **scenario_body(plan),
        "created_by": "service:svc-test",
        "published_at": None,
        **changes,
    }


def _stored_state() -> tuple[Any, ...]:
    """What a refused write must leave alone."""
    return (
        list(Scenario.objects.order_by("pk").values()),
        list(ScenarioTierOverride.objects.order_by("pk").values()),
        list(Scenario.include_promotion_rules.through.objects.order_by("pk").values()),
        AuditEntry.objects.count(),
    )


# --- create ---------------------------------------------------------------------------------------
def test_create_returns_201_with_the_stored_scenario_audited_and_live_config_untouched(api, tenant, plan):
    version = config_version(tenant)

    response = api.post(URL, scenario_body(plan), format="json")

    assert response.status_code == 201, response.content
    scenario = Scenario.objects.get(tenant=tenant, code="gold-10")
    assert body_without_timestamps(response) == _expected(scenario, plan)
    assert audit_trail(tenant) == [("scenario.created", "simulation.scenario", str(scenario.pk))]
    entry = AuditEntry.objects.get()
    assert entry.before is None
    assert entry.after["tier_overrides"] == [{"tier": plan["silver"].pk, "point_multiplier": "1.25"}]
    assert entry.after["include_promotion_rules"] == [plan["draft_rule"].pk]
    assert config_version(tenant) == version
    assert scenario.fingerprint == _fingerprint(plan)


def _hashes(plan: dict[str, Any], *names: str) -> dict[str, str]:
    """The named objects' state hashes as stored (by id)."""
    rows = [plan[name] for name in names]
    return {str(row.pk): state_hash(type(row).objects.get(pk=row.pk)) for row in rows}


def _fingerprint(plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        "promotion_rules": _hashes(plan, "gold_rule", "draft_rule"),
        "point_rules": _hashes(plan, "base", "double"),
        "modifiers": _hashes(plan, "weekend", "triple"),
        "tier_overrides": _hashes(plan, "silver"),
    }


def test_create_with_only_code_and_name_names_nothing(api, tenant, plan):
    response = api.post(URL, {"code": "empty", "name": "Nothing yet"}, format="json")

    assert response.status_code == 201, response.content
    none = {"include": [], "exclude": []}
    assert body_without_timestamps(response) == {
        "id": Scenario.objects.get(code="empty").pk,
        "code": "empty",
        "name": "Nothing yet",
        "promotion_rules": none,
        "point_rules": none,
        "modifiers": none,
        "tier_overrides": [],
        "created_by": "service:svc-test",
        "published_at": None,
    }


def test_repeated_ids_are_stored_once(api, tenant, plan):
    body = scenario_body(plan, promotion_rules={"include": [plan["draft_rule"].pk] * 3, "exclude": []})

    response = api.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["promotion_rules"] == {"include": [plan["draft_rule"].pk], "exclude": []}


def test_duplicate_code_is_409_and_stores_nothing(api, tenant, plan):
    assert api.post(URL, scenario_body(plan), format="json").status_code == 201
    before = _stored_state()

    body = assert_problem(api.post(URL, scenario_body(plan, name="Again"), format="json"), 409, "duplicate_code")

    assert body["errors"] == {"code": ["Scenario 'gold-10' already exists."]}
    assert _stored_state() == before


def test_same_code_in_another_tenant_is_fine(api, api_client_for, tenant, other_tenant, plan):
    assert (
        api_client_for(other_tenant).post(URL, {"code": "gold-10", "name": "Theirs"}, format="json").status_code == 201
    )

    assert api.post(URL, scenario_body(plan), format="json").status_code == 201


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param(
            lambda p, f: {"promotion_rules": {"include": [p["gold_rule"].pk], "exclude": []}},
            lambda p, f: {
                "promotion_rules.include": [
                    f"The promotion rule 'hotel-gold-by-nights' ({p['gold_rule'].pk}) is active: "
                    "only drafts can be included."
                ]
            },
            id="active-rule-included",
        ),
        pytest.param(
            lambda p, f: {"point_rules": {"include": [], "exclude": [p["double"].pk]}},
            lambda p, f: {
                "point_rules.exclude": [
                    f"The conversion rule 'double' ({p['double'].pk}) is draft: only active ones can be excluded."
                ]
            },
            id="draft-rule-excluded",
        ),
        pytest.param(
            lambda p, f: {"modifiers": {"include": [p["old"].pk], "exclude": [p["old"].pk]}},
            lambda p, f: {
                "modifiers.include": [f"The modifier 'old' ({p['old'].pk}) is archived: only drafts can be included."],
                "modifiers.exclude": [
                    f"The modifier 'old' ({p['old'].pk}) is archived: only active ones can be excluded."
                ],
            },
            id="archived-modifier-either-side",
        ),
        pytest.param(
            lambda p, f: {"promotion_rules": {"include": [999999], "exclude": []}},
            lambda p, f: {"promotion_rules.include": ["No promotion rule with id 999999 in this tenant."]},
            id="unknown-rule",
        ),
        pytest.param(
            lambda p, f: {"promotion_rules": {"include": [f["draft_rule"].pk], "exclude": [f["gold_rule"].pk]}},
            lambda p, f: {
                "promotion_rules.include": [f"No promotion rule with id {f['draft_rule'].pk} in this tenant."],
                "promotion_rules.exclude": [f"No promotion rule with id {f['gold_rule'].pk} in this tenant."],
            },
            id="another-tenants-rules",
        ),
        pytest.param(
            lambda p, f: {"tier_overrides": [{"tier": f["gold"].pk, "point_multiplier": "2.00"}]},
            lambda p, f: {"tier_overrides.0.tier": [f"No tier with id {f['gold'].pk} in this tenant."]},
            id="another-tenants-tier",
        ),
        pytest.param(
            lambda p, f: {
                "tier_overrides": [
                    {"tier": p["silver"].pk, "point_multiplier": "2.00"},
                    {"tier": p["silver"].pk, "point_multiplier": "3.00"},
                ]
            },
            lambda p, f: {"tier_overrides.1.tier": [f"The tier 'silver' ({p['silver'].pk}) is overridden twice."]},
            id="tier-overridden-twice",
        ),
    ],
)
def test_ids_that_are_not_the_tenants_drafts_actives_or_tiers_are_422_naming_the_field(
    api, tenant, plan, foreign, changes, errors
):
    before = _stored_state()
    version = config_version(tenant)

    response = api.post(URL, scenario_body(plan, **changes(plan, foreign)), format="json")

    assert validation_errors(response) == errors(plan, foreign)
    assert _stored_state() == before
    assert config_version(tenant) == version


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({"name": "No code"}, {"code": ["This field is required."]}, id="no-code"),
        pytest.param(
            {"code": "Not a slug!", "name": "x"},
            {"code": ['Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.']},
            id="bad-slug",
        ),
        pytest.param({"code": "x", "name": ""}, {"name": ["This field may not be blank."]}, id="blank-name"),
        pytest.param(
            {"code": "x", "name": "x", "promotion_rules": [1, 2]},
            {"promotion_rules": ["Invalid data. Expected a dictionary, but got list."]},
            id="rules-not-an-object",
        ),
        pytest.param(
            {"code": "x", "name": "x", "point_rules": {"include": ["abc"]}},
            {"point_rules.include.0": ["A valid integer is required."]},
            id="id-not-an-integer",
        ),
        pytest.param(
            {"code": "x", "name": "x", "modifiers": {"exclude": [0]}},
            {"modifiers.exclude.0": ["Ensure this value is greater than or equal to 1."]},
            id="id-zero",
        ),
        pytest.param(
            {"code": "x", "name": "x", "tier_overrides": [{"tier": 1, "point_multiplier": "-1"}]},
            {"tier_overrides.0.point_multiplier": ["Ensure this value is greater than or equal to 0."]},
            id="negative-multiplier",
        ),
        pytest.param(
            {"code": "x", "name": "x", "tier_overrides": [{"tier": 1, "point_multiplier": "1.234"}]},
            {"tier_overrides.0.point_multiplier": ["Ensure that there are no more than 2 decimal places."]},
            id="three-decimals",
        ),
        pytest.param(
            {"code": "x", "name": "x", "tier_overrides": [{"point_multiplier": "2"}]},
            {"tier_overrides.0.tier": ["This field is required."]},
            id="override-without-tier",
        ),
    ],
)
def test_malformed_scenario_is_422_and_stores_nothing(api, tenant, plan, body, errors):
    before = _stored_state()

    assert validation_errors(api.post(URL, body, format="json")) == errors
    assert _stored_state() == before


def test_body_that_is_not_json_is_400_and_stores_nothing(api, tenant, plan):
    before = _stored_state()

    response = api.post(URL, "{not json", content_type="application/json")

    assert_problem(response, 400, "malformed_json")
    assert _stored_state() == before


# --- read -----------------------------------------------------------------------------------------
def test_list_shows_the_tenants_scenarios_latest_change_first(api, api_client_for, tenant, other_tenant, plan):
    first = api.post(URL, scenario_body(plan), format="json").json()
    second = api.post(URL, {"code": "second", "name": "Second"}, format="json").json()
    api_client_for(other_tenant).post(URL, {"code": "theirs", "name": "Theirs"}, format="json")

    response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert response.json()["results"] == [second, first]


def test_list_does_not_query_per_scenario(api, tenant, plan, django_assert_max_num_queries):
    for n in range(5):
        api.post(URL, scenario_body(plan, code=f"s{n}"), format="json")

    with django_assert_max_num_queries(12):
        response = api.get(URL)

    assert response.json()["count"] == 5


def test_read_one(api, tenant, plan):
    created = api.post(URL, scenario_body(plan), format="json").json()

    response = api.get(f"{URL}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


# --- replace and delete ---------------------------------------------------------------------------
def test_put_replaces_the_scenario_and_its_fingerprint_omitted_lists_become_empty(api, tenant, plan):
    scenario_id = api.post(URL, scenario_body(plan), format="json").json()["id"]
    version = config_version(tenant)

    response = api.put(
        f"{URL}/{scenario_id}",
        {
            "code": "gold-10",
            "name": "Gold at 10 nights, no overrides",
            "promotion_rules": {"include": [plan["draft_rule"].pk]},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    scenario = Scenario.objects.get()
    none = {"include": [], "exclude": []}
    assert body_without_timestamps(response) == _expected(
        scenario,
        plan,
        name="Gold at 10 nights, no overrides",
        promotion_rules={"include": [plan["draft_rule"].pk], "exclude": []},
        point_rules=none,
        modifiers=none,
        tier_overrides=[],
    )
    assert scenario.fingerprint == {
        "promotion_rules": _hashes(plan, "draft_rule"),
        "point_rules": {},
        "modifiers": {},
        "tier_overrides": {},
    }
    assert audit_trail(tenant)[-1] == ("scenario.updated", "simulation.scenario", str(scenario_id))
    entry = AuditEntry.objects.latest("pk")
    assert entry.before["tier_overrides"] == [{"tier": plan["silver"].pk, "point_multiplier": "1.25"}]
    assert entry.after["tier_overrides"] == []
    assert config_version(tenant) == version


def test_put_needs_the_whole_scenario(api, tenant, plan):
    scenario_id = api.post(URL, scenario_body(plan), format="json").json()["id"]
    before = _stored_state()

    response = api.put(f"{URL}/{scenario_id}", {"name": "Renamed"}, format="json")

    assert validation_errors(response) == {"code": ["This field is required."]}
    assert _stored_state() == before


def test_put_to_another_scenarios_code_is_409(api, tenant, plan):
    api.post(URL, scenario_body(plan), format="json")
    other = api.post(URL, {"code": "other", "name": "Other"}, format="json").json()
    before = _stored_state()

    response = api.put(f"{URL}/{other['id']}", {"code": "gold-10", "name": "Other"}, format="json")

    assert_problem(response, 409, "duplicate_code")
    assert _stored_state() == before


def test_delete_removes_the_scenario_and_its_overrides_audited(api, tenant, plan):
    scenario_id = api.post(URL, scenario_body(plan), format="json").json()["id"]

    response = api.delete(f"{URL}/{scenario_id}")

    assert response.status_code == 204
    assert not Scenario.objects.exists()
    assert not ScenarioTierOverride.objects.exists()
    assert audit_trail(tenant)[-1] == ("scenario.deleted", "simulation.scenario", str(scenario_id))
    assert AuditEntry.objects.latest("pk").before["code"] == "gold-10"
    assert_problem(api.get(f"{URL}/{scenario_id}"), 404, "not_found")


# --- who may ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "/{id}"), ("put", "/{id}"), ("delete", "/{id}"), ("post", "/{id}/publish")],
)
def test_another_tenants_scenario_is_404_and_untouched(api_client_for, api, other_tenant, plan, method, path):
    scenario_id = api.post(URL, scenario_body(plan), format="json").json()["id"]
    before = _stored_state()
    theirs = api_client_for(other_tenant)

    response = getattr(theirs, method)(URL + path.format(id=scenario_id), {"code": "x", "name": "x"}, format="json")

    if path:
        assert_problem(response, 404, "not_found")
    elif method == "get":
        assert response.json()["count"] == 0
    assert list(Scenario.objects.filter(pk=scenario_id).values()) == before[0]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "/1"), ("put", "/1"), ("delete", "/1"), ("post", "/1/publish")],
)
def test_without_a_token_is_401(client, plan, method, path):
    response = getattr(client, method)(URL + path, content_type="application/json")

    assert_problem(response, 401, "not_authenticated")


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_WRITE])
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "/{id}"), ("put", "/{id}"), ("delete", "/{id}"), ("post", "/{id}/publish")],
)
def test_without_the_admin_scope_is_403_and_nothing_changes(api, api_client_for, tenant, plan, scope, method, path):
    scenario_id = api.post(URL, scenario_body(plan), format="json").json()["id"]
    before = _stored_state()
    client = api_client_for(tenant, scope=scope)

    response = getattr(client, method)(URL + path.format(id=scenario_id), scenario_body(plan), format="json")

    assert_problem(response, 403, "insufficient_scope")
    assert _stored_state() == before


def test_rule_ids_of_another_tenant_never_leak_their_state(api, tenant, plan, other_tenant):
    """Another tenant's draft reads exactly like an id that does not exist (no "is draft" hint)."""
    _, tiers, _ = hotel_ladder(other_tenant, code="air")
    theirs = PromotionRuleFactory(tier_type=tiers["gold"].tier_type, target_tier=tiers["gold"], status="draft")

    response = api.post(URL, scenario_body(plan, promotion_rules={"include": [theirs.pk]}), format="json")

    assert validation_errors(response) == {
        "promotion_rules.include": [f"No promotion rule with id {theirs.pk} in this tenant."]
    }

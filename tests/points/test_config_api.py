"""The configuration API of the points context (/api/v1/point-conversion/rule, /point-conversion/modifier,
/point-policy).

Every write goes through ``points.services``: one audit entry and one ``config_version`` bump per saved
row; a refused write stores nothing, audits nothing and leaves the version alone.
"""

import json
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from config.api import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE
from points.models import PointConversionRule, PointModifier, PointPolicy, PointTransaction
from tests.factories import MemberFactory, hotel_ladder
from tests.helpers import assert_problem, audit_trail, body_without_timestamps, config_version, validation_errors
from tiers.models import PromotionRule, Tier, TierType

pytestmark = pytest.mark.django_db

Ladder = tuple[TierType, dict[str, Tier], PromotionRule]

KNOWN_TYPES = "transaction, mission, campaign, promo, engagement, refund, custom"
WEEKDAYS = "A list of weekdays from 0 (Monday) to 6 (Sunday)."


def _base_rule(tier_type: TierType | None, /, **changes: Any) -> dict[str, Any]:
    """The body of API.md's ``POST /point-conversion/rule`` example."""
    return {
        "code": "base",
        "name": "Base earn",
        "event_types": ["transaction"],
        "product": None,
        "partner": None,
        "base": "per_amount",
        "unit_amount": "1.00",
        "points_per_unit": 10,
        "quantity_name": None,
        "tier_type": tier_type.pk if tier_type else None,
        "group": "base",
        "priority": 0,
        "rounding": "down",
        "min_amount": None,
        "cap_per_event": None,
        "cap_per_day": None,
        "cap_per_week": None,
        "cap_per_month": None,
        "status": "active",
        "effective_from": None,
        "effective_until": None,
        **changes,
    }


# Every field a stored rule renders, beyond API.md's example (which omits these).
RULE_EXTRAS = {"source": "", "channel": "", "description": ""}


def _weekend(**changes: Any) -> dict[str, Any]:
    """The body of API.md's ``POST /point-conversion/modifier`` example, with a concrete window."""
    return {
        "code": "double-weekend",
        "multiplier": "2",
        "bonus_points": 0,
        "starts_at": "2026-03-01T00:00:00Z",
        "ends_at": "2026-04-01T00:00:00Z",
        "days_of_week": [5, 6],
        "event_types": ["transaction"],
        "tiers": [],
        "campaign_code": "",
        "exclusive": False,
        "campaign_total": None,
        "status": "active",
        **changes,
    }


# --- helpers --------------------------------------------------------------------------------------
def _rule(tenant: Any, code: str = "base", **fields: Any) -> PointConversionRule:
    values = {"base": "per_amount", "unit_amount": Decimal("1.00"), "points_per_unit": 10, **fields}
    return PointConversionRule.objects.create(tenant=tenant, code=code, **values)


def _modifier(tenant: Any, code: str = "double-weekend", *, rules=(), tiers=(), **fields: Any) -> PointModifier:
    modifier = PointModifier.objects.create(tenant=tenant, code=code, **{"multiplier": Decimal(2), **fields})
    modifier.rules.set(rules)
    modifier.tiers.set(tiers)
    return modifier


def _state(tenant: Any) -> tuple[Any, ...]:
    """Everything a refused write must leave alone: rows, scopes, audit trail, config version."""
    tenant.refresh_from_db()
    return (
        tenant.config_version,
        AuditEntry.objects.count(),
        list(PointConversionRule.objects.order_by("pk").values()),
        list(PointModifier.objects.order_by("pk").values()),
        list(PointModifier.rules.through.objects.order_by("pk").values()),
        list(PointModifier.tiers.through.objects.order_by("pk").values()),
        list(PointPolicy.objects.order_by("pk").values()),
    )


@pytest.fixture
def foreign(other_tenant: Any) -> dict[str, Any]:
    """Globex's ladder, conversion rule and modifier."""
    tier_type, tiers, _ = hotel_ladder(other_tenant)
    rule = _rule(other_tenant, tier_type=tier_type)
    return {
        "tier_type": tier_type,
        "tier": tiers["gold"],
        "rule": rule,
        "modifier": _modifier(other_tenant, rules=[rule], tiers=[tiers["gold"]]),
    }


# --- conversion rules -----------------------------------------------------------------------------
def test_create_rule_returns_201_with_the_stored_object_and_summary_audited_once(api, tenant, ladder):
    version = config_version(tenant)

    response = api.post("/api/v1/point-conversion/rule", _base_rule(ladder[0]), format="json")

    assert response.status_code == 201, response.content
    rule = PointConversionRule.objects.get(tenant=tenant, code="base")
    assert body_without_timestamps(response) == {
        "id": rule.pk,
        **_base_rule(ladder[0]),
        **RULE_EXTRAS,
        "summary": "10 pts per 1.00 × tier multiplier",
    }
    assert (rule.unit_amount, rule.tier_type_id, rule.event_types) == (Decimal("1.00"), ladder[0].pk, ["transaction"])
    assert audit_trail(tenant) == [("pointconversionrule.created", "points.pointconversionrule", str(rule.pk))]
    assert AuditEntry.objects.get().actor == "service:svc-test"
    assert config_version(tenant) == version + 1


def test_create_rule_with_only_code_and_unit_amount_takes_the_defaults(api, tenant):
    response = api.post("/api/v1/point-conversion/rule", {"code": "one", "unit_amount": "25"}, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": PointConversionRule.objects.get(code="one").pk,
        "code": "one",
        "name": "",
        "event_types": [],
        "product": None,
        "partner": None,
        "source": "",
        "channel": "",
        "base": "per_amount",
        "unit_amount": "25.00",
        "points_per_unit": 1,
        "quantity_name": None,
        "tier_type": None,
        "group": "base",
        "priority": 0,
        "rounding": "down",
        "min_amount": None,
        "cap_per_event": None,
        "cap_per_day": None,
        "cap_per_week": None,
        "cap_per_month": None,
        "status": "active",
        "effective_from": None,
        "effective_until": None,
        "description": "",
        "summary": "1 pts per 25.00",
    }


def test_create_per_quantity_partner_rule_with_caps_and_window(api, tenant):
    body = _base_rule(
        None,
        code="nights",
        event_types=["transaction", "custom"],
        partner="air-partner",
        source="pms",
        channel="web",
        base="per_quantity",
        unit_amount=None,
        points_per_unit=500,
        quantity_name="nights",
        group="partner_bonus",
        priority=5,
        rounding="half_up",
        min_amount="10.50",
        cap_per_event=75000,
        cap_per_day=100000,
        cap_per_week=200000,
        cap_per_month=500000,
        status="draft",
        effective_from="2026-01-01T00:00:00+07:00",
        effective_until="2027-01-01T00:00:00Z",
        description="Nights bonus",
    )

    response = api.post("/api/v1/point-conversion/rule", body, format="json")

    assert response.status_code == 201, response.content
    got = body_without_timestamps(response)
    assert got == {
        "id": PointConversionRule.objects.get(code="nights").pk,
        **body,
        "effective_from": "2025-12-31T17:00:00Z",
        "summary": "500 pts per nights, cap 75,000 per event, cap 100,000 per day, cap 200,000 per week, "
        "cap 500,000 per month",
    }


def test_create_per_event_rule(api, tenant):
    body = _base_rule(None, code="visit", event_types=["mission"], base="per_event", unit_amount=None)

    response = api.post("/api/v1/point-conversion/rule", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["summary"] == "10 pts per event"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param({"unit_amount": None}, {"unit_amount": ["Required for per_amount."]}, id="per-amount-no-unit"),
        pytest.param(
            {"base": "per_quantity", "quantity_name": ""},
            {"quantity_name": ["Required for per_quantity."]},
            id="per-quantity-no-name",
        ),
        pytest.param(
            {"event_types": ["transaction", "purchase"]},
            {"event_types": [f"Unknown event type(s): purchase. Known: {KNOWN_TYPES}."]},
            id="unknown-event-type",
        ),
        pytest.param(
            {"event_types": "transaction"},
            {"event_types": ['Expected a list of items but got type "str".']},
            id="event-types-not-a-list",
        ),
        pytest.param(
            {"effective_from": "2026-06-01T00:00:00Z", "effective_until": "2026-01-01T00:00:00Z"},
            {"effective_until": ["Must be after effective_from."]},
            id="window-inverted",
        ),
        pytest.param(
            {"effective_from": "2026-06-01T00:00:00Z", "effective_until": "2026-06-01T00:00:00Z"},
            {"effective_until": ["Must be after effective_from."]},
            id="window-empty",
        ),
        pytest.param(
            {"unit_amount": "0.00"},
            {"unit_amount": ["Ensure this value is greater than or equal to 0.01."]},
            id="zero-unit",
        ),
        pytest.param(
            {"points_per_unit": -1},
            {"points_per_unit": ["Ensure this value is greater than or equal to 0."]},
            id="negative-points",
        ),
        pytest.param(
            {"cap_per_day": -5},
            {"cap_per_day": ["Ensure this value is greater than or equal to 0."]},
            id="negative-cap",
        ),
        pytest.param({"base": "per_night"}, {"base": ['"per_night" is not a valid choice.']}, id="base"),
        pytest.param({"rounding": "nearest"}, {"rounding": ['"nearest" is not a valid choice.']}, id="rounding"),
        pytest.param({"status": "live"}, {"status": ['"live" is not a valid choice.']}, id="status"),
        pytest.param(
            {"tier_type": 999999}, {"tier_type": ['Invalid pk "999999" - object does not exist.']}, id="tier-type"
        ),
        pytest.param({"unit_amount": "ten"}, {"unit_amount": ["A valid number is required."]}, id="unit-not-number"),
    ],
)
def test_invalid_rule_is_422_naming_the_field_and_stores_nothing(api, tenant, ladder, changes, errors):
    before = _state(tenant)

    response = api.post("/api/v1/point-conversion/rule", _base_rule(ladder[0], **changes), format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


@pytest.mark.parametrize("changes", [{"code": "not a slug!"}, {"code": ""}, {"group": "two words"}])
def test_bad_slugs_in_a_rule_are_422_naming_the_field(api, tenant, changes):
    before = _state(tenant)

    response = api.post("/api/v1/point-conversion/rule", _base_rule(None, **changes), format="json")

    assert list(validation_errors(response)) == list(changes)
    assert _state(tenant) == before


def test_missing_rule_code_is_named(api, tenant):
    before = _state(tenant)

    errors = validation_errors(api.post("/api/v1/point-conversion/rule", {"unit_amount": "1"}, format="json"))

    assert errors == {"code": ["This field is required."]}
    assert _state(tenant) == before


def test_duplicate_rule_code_is_409_and_stores_nothing(api, tenant):
    _rule(tenant)
    before = _state(tenant)

    body = assert_problem(
        api.post("/api/v1/point-conversion/rule", _base_rule(None), format="json"), 409, "duplicate_code"
    )

    assert body["errors"] == {"code": ["Point conversion rule 'base' already exists."]}
    assert _state(tenant) == before


def test_same_rule_code_in_another_tenant_is_fine(api, tenant, foreign):
    response = api.post("/api/v1/point-conversion/rule", _base_rule(None), format="json")

    assert response.status_code == 201, response.content
    assert PointConversionRule.objects.filter(code="base").count() == 2


def test_list_rules_in_group_then_priority_order_with_filters(api, tenant, ladder, foreign):
    air = hotel_ladder(tenant, code="air")[0]
    _rule(tenant, "base-low", priority=0, tier_type=ladder[0])
    _rule(tenant, "base-high", priority=10, tier_type=air)
    _rule(tenant, "bonus", group="partner_bonus", status="draft")
    _rule(tenant, "old", status="archived")

    def codes(query: str = "") -> list[str]:
        response = api.get(f"/api/v1/point-conversion/rule{query}")
        assert response.status_code == 200, response.content
        return [r["code"] for r in response.json()["results"]]

    assert codes() == ["base-high", "base-low", "old", "bonus"]
    assert codes("?status=draft") == ["bonus"]
    assert codes("?status=active") == ["base-high", "base-low"]
    assert codes("?group=partner_bonus") == ["bonus"]
    assert codes("?code=old") == ["old"]
    assert codes(f"?tier_type={air.pk}") == ["base-high"]
    assert codes(f"?tier_type={ladder[0].pk}&status=active") == ["base-low"]
    assert codes(f"?tier_type={foreign['tier_type'].pk}") == []
    page = api.get("/api/v1/point-conversion/rule?page_size=2&page=2").json()
    assert (page["count"], [r["code"] for r in page["results"]]) == (4, ["old", "bonus"])


def test_filter_rules_by_unknown_status_is_422(api, tenant):
    assert "status" in validation_errors(api.get("/api/v1/point-conversion/rule?status=live"))


def test_list_rules_does_not_query_per_row(api, tenant, ladder, django_assert_max_num_queries):
    for n in range(5):
        _rule(tenant, f"r{n}", tier_type=ladder[0])

    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/point-conversion/rule")

    assert response.json()["count"] == 5


def test_retrieve_rule(api, tenant, ladder):
    rule = _rule(tenant, tier_type=ladder[0], name="Base earn", event_types=["transaction"], cap_per_event=75000)

    response = api.get(f"/api/v1/point-conversion/rule/{rule.pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        "id": rule.pk,
        **_base_rule(ladder[0], cap_per_event=75000),
        **RULE_EXTRAS,
        "summary": "10 pts per 1.00 × tier multiplier, cap 75,000 per event",
    }


def test_put_rule_replaces_it_and_resets_omitted_fields_to_their_defaults(api, tenant, ladder):
    rule = _rule(tenant, tier_type=ladder[0], cap_per_day=5000, description="old", priority=3)
    version = config_version(tenant)

    response = api.put(
        f"/api/v1/point-conversion/rule/{rule.pk}",
        {"code": "base", "base": "per_event", "points_per_unit": 100, "status": "draft"},
        format="json",
    )

    assert response.status_code == 200, response.content
    got = body_without_timestamps(response)
    assert (got["base"], got["points_per_unit"], got["status"]) == ("per_event", 100, "draft")
    assert (got["tier_type"], got["cap_per_day"], got["description"], got["priority"]) == (None, None, "", 0)
    assert (got["unit_amount"], got["summary"]) == (None, "100 pts per event")
    rule.refresh_from_db()
    assert (rule.base, rule.tier_type_id, rule.cap_per_day) == ("per_event", None, None)
    entry = AuditEntry.objects.get(tenant=tenant)
    assert (entry.action, entry.target_id) == ("pointconversionrule.updated", str(rule.pk))
    assert (entry.before["cap_per_day"], entry.after["cap_per_day"]) == (5000, None)
    assert config_version(tenant) == version + 1


def test_put_rule_requires_the_whole_object(api, tenant):
    rule = _rule(tenant)
    before = _state(tenant)

    errors = validation_errors(api.put(f"/api/v1/point-conversion/rule/{rule.pk}", {"name": "X"}, format="json"))

    assert errors == {"code": ["This field is required."]}
    assert _state(tenant) == before


def test_put_rule_to_a_taken_code_is_409(api, tenant):
    _rule(tenant, "taken")
    rule = _rule(tenant)
    before = _state(tenant)

    response = api.put(f"/api/v1/point-conversion/rule/{rule.pk}", _base_rule(None, code="taken"), format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {
        "code": ["Point conversion rule 'taken' already exists."]
    }
    assert _state(tenant) == before


def test_patch_rule_changes_only_the_named_fields(api, tenant, ladder):
    rule = _rule(tenant, tier_type=ladder[0], cap_per_day=5000)
    version = config_version(tenant)

    response = api.patch(f"/api/v1/point-conversion/rule/{rule.pk}", {"status": "archived"}, format="json")

    assert response.status_code == 200, response.content
    got = body_without_timestamps(response)
    assert (got["status"], got["tier_type"], got["cap_per_day"], got["unit_amount"]) == (
        "archived",
        ladder[0].pk,
        5000,
        "1.00",
    )
    assert audit_trail(tenant) == [("pointconversionrule.updated", "points.pointconversionrule", str(rule.pk))]
    assert config_version(tenant) == version + 1


def test_patch_rule_to_per_amount_without_unit_is_422(api, tenant):
    rule = _rule(tenant, "visit", base="per_event", unit_amount=None)
    before = _state(tenant)

    response = api.patch(f"/api/v1/point-conversion/rule/{rule.pk}", {"base": "per_amount"}, format="json")

    assert validation_errors(response) == {"unit_amount": ["Required for per_amount."]}
    assert _state(tenant) == before


def test_delete_rule(api, tenant):
    rule = _rule(tenant)
    version = config_version(tenant)

    response = api.delete(f"/api/v1/point-conversion/rule/{rule.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not PointConversionRule.objects.filter(pk=rule.pk).exists()
    assert audit_trail(tenant) == [("pointconversionrule.deleted", "points.pointconversionrule", str(rule.pk))]
    assert config_version(tenant) == version + 1


def test_delete_rule_scoping_a_modifier_removes_it_from_the_scope(api, tenant):
    rule = _rule(tenant)
    modifier = _modifier(tenant, rules=[rule])

    response = api.delete(f"/api/v1/point-conversion/rule/{rule.pk}")

    assert response.status_code == 204
    assert list(modifier.rules.all()) == []


def test_delete_rule_that_awarded_points_is_409_in_use(api, tenant):
    rule = _rule(tenant)
    PointTransaction.objects.create(
        tenant=tenant,
        member=MemberFactory(tenant=tenant),
        kind="earn",
        rule=rule,
        points=250,
        occurred_at=timezone.now(),
    )
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/point-conversion/rule/{rule.pk}"), 409, "in_use")

    assert body["detail"] == "Cannot delete base: it awarded 1 point transaction. Archive it instead."
    assert _state(tenant) == before


# --- modifiers ------------------------------------------------------------------------------------
def test_create_modifier_returns_201_with_its_scope_audited_once(api, tenant, ladder):
    rule = _rule(tenant)
    gold, platinum = ladder[1]["gold"], ladder[1]["platinum"]
    version = config_version(tenant)
    body = _weekend(rules=[rule.pk], tiers=[gold.pk, platinum.pk], name="Double weekends", campaign_code="SPRING")

    response = api.post("/api/v1/point-conversion/modifier", body, format="json")

    assert response.status_code == 201, response.content
    modifier = PointModifier.objects.get(tenant=tenant, code="double-weekend")
    assert body_without_timestamps(response) == {
        "id": modifier.pk,
        **body,
        "multiplier": "2.000",
        "product": None,
        "partner": None,
        "pool_used": 0,
    }
    assert list(modifier.rules.all()) == [rule]
    assert set(modifier.tiers.all()) == {gold, platinum}
    assert (modifier.multiplier, modifier.days_of_week) == (Decimal(2), [5, 6])
    assert audit_trail(tenant) == [("pointmodifier.created", "points.pointmodifier", str(modifier.pk))]
    assert config_version(tenant) == version + 1


def test_create_modifier_with_only_a_code_takes_the_defaults(api, tenant):
    response = api.post("/api/v1/point-conversion/modifier", {"code": "plain"}, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": PointModifier.objects.get(code="plain").pk,
        "code": "plain",
        "name": "",
        "multiplier": "1.000",
        "bonus_points": 0,
        "starts_at": None,
        "ends_at": None,
        "days_of_week": [],
        "event_types": [],
        "rules": [],
        "product": None,
        "partner": None,
        "tiers": [],
        "campaign_code": "",
        "exclusive": False,
        "campaign_total": None,
        "status": "active",
        "pool_used": 0,
    }


def test_create_exclusive_bonus_campaign_with_a_pool(api, tenant):
    body = _weekend(
        code="launch",
        multiplier="1.5",
        bonus_points=200,
        starts_at="2026-03-01T00:00:00+07:00",
        days_of_week=[],
        event_types=[],
        product="suite",
        partner="air-partner",
        campaign_code="LAUNCH",
        exclusive=True,
        campaign_total=100000,
    )

    response = api.post("/api/v1/point-conversion/modifier", body, format="json")

    assert response.status_code == 201, response.content
    got = response.json()
    assert (got["multiplier"], got["bonus_points"], got["exclusive"], got["campaign_total"]) == (
        "1.500",
        200,
        True,
        100000,
    )
    assert (got["starts_at"], got["product"], got["partner"]) == ("2026-02-28T17:00:00Z", "suite", "air-partner")


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param({"days_of_week": [5, 7]}, {"days_of_week": [WEEKDAYS]}, id="weekday-too-big"),
        pytest.param({"days_of_week": [-1]}, {"days_of_week": [WEEKDAYS]}, id="weekday-negative"),
        pytest.param({"days_of_week": ["sat"]}, {"days_of_week": [WEEKDAYS]}, id="weekday-name"),
        pytest.param({"days_of_week": 5}, {"days_of_week": [WEEKDAYS]}, id="weekdays-not-a-list"),
        pytest.param(
            {"event_types": ["purchase", "bogus"]},
            {"event_types": [f"Unknown event type(s): bogus, purchase. Known: {KNOWN_TYPES}."]},
            id="unknown-event-types",
        ),
        pytest.param(
            {"starts_at": "2026-04-01T00:00:00Z", "ends_at": "2026-03-01T00:00:00Z"},
            {"ends_at": ["Must be after starts_at."]},
            id="window-inverted",
        ),
        pytest.param(
            {"multiplier": "-1"},
            {"multiplier": ["Ensure this value is greater than or equal to 0."]},
            id="negative-multiplier",
        ),
        pytest.param(
            {"multiplier": "1234"},
            {"multiplier": ["Ensure that there are no more than 3 digits before the decimal point."]},
            id="multiplier-too-big",
        ),
        pytest.param(
            {"bonus_points": -10},
            {"bonus_points": ["Ensure this value is greater than or equal to 0."]},
            id="negative-bonus",
        ),
        pytest.param(
            {"campaign_total": -1},
            {"campaign_total": ["Ensure this value is greater than or equal to 0."]},
            id="negative-pool",
        ),
        pytest.param({"status": "live"}, {"status": ['"live" is not a valid choice.']}, id="status"),
        pytest.param({"rules": [999999]}, {"rules": ['Invalid pk "999999" - object does not exist.']}, id="rule"),
        pytest.param({"tiers": [999999]}, {"tiers": ['Invalid pk "999999" - object does not exist.']}, id="tier"),
        pytest.param({"tiers": 3}, {"tiers": ['Expected a list of items but got type "int".']}, id="tiers-not-a-list"),
    ],
)
def test_invalid_modifier_is_422_naming_the_field_and_stores_nothing(api, tenant, changes, errors):
    before = _state(tenant)

    response = api.post("/api/v1/point-conversion/modifier", _weekend(**changes), format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


def test_duplicate_modifier_code_is_409_and_stores_nothing(api, tenant):
    _modifier(tenant)
    before = _state(tenant)

    response = api.post("/api/v1/point-conversion/modifier", _weekend(), format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {
        "code": ["Point modifier 'double-weekend' already exists."]
    }
    assert _state(tenant) == before


def test_list_and_filter_modifiers(api, tenant, foreign):
    _modifier(tenant, "spring", campaign_code="SPRING", starts_at=timezone.now())
    _modifier(tenant, "draft", status="draft")
    _modifier(tenant, "old", status="archived", campaign_code="SPRING")

    def codes(query: str = "") -> list[str]:
        response = api.get(f"/api/v1/point-conversion/modifier{query}")
        assert response.status_code == 200, response.content
        return sorted(m["code"] for m in response.json()["results"])

    assert codes() == ["draft", "old", "spring"]
    assert codes("?status=draft") == ["draft"]
    assert codes("?campaign_code=SPRING") == ["old", "spring"]
    assert codes("?campaign_code=SPRING&status=active") == ["spring"]
    assert codes("?code=old") == ["old"]
    assert codes("?code=double-weekend") == []


def test_list_modifiers_does_not_query_per_row(api, tenant, ladder, django_assert_max_num_queries):
    rule = _rule(tenant)
    for n in range(5):
        _modifier(tenant, f"m{n}", rules=[rule], tiers=[ladder[1]["gold"], ladder[1]["silver"]])

    with django_assert_max_num_queries(7):
        response = api.get("/api/v1/point-conversion/modifier")

    results = response.json()["results"]
    assert len(results) == 5
    assert {(tuple(m["rules"]), tuple(sorted(m["tiers"]))) for m in results} == {
        ((rule.pk,), tuple(sorted([ladder[1]["gold"].pk, ladder[1]["silver"].pk])))
    }


def test_retrieve_modifier(api, tenant, ladder):
    rule = _rule(tenant)
    modifier = _modifier(
        tenant,
        rules=[rule],
        tiers=[ladder[1]["gold"]],
        name="Double weekends",
        days_of_week=[5, 6],
        event_types=["transaction"],
        pool_used=1500,
    )

    response = api.get(f"/api/v1/point-conversion/modifier/{modifier.pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        "id": modifier.pk,
        "code": "double-weekend",
        "name": "Double weekends",
        "multiplier": "2.000",
        "bonus_points": 0,
        "starts_at": None,
        "ends_at": None,
        "days_of_week": [5, 6],
        "event_types": ["transaction"],
        "rules": [rule.pk],
        "product": None,
        "partner": None,
        "tiers": [ladder[1]["gold"].pk],
        "campaign_code": "",
        "exclusive": False,
        "campaign_total": None,
        "status": "active",
        "pool_used": 1500,
    }


def test_put_modifier_replaces_it_and_its_scope(api, tenant, ladder):
    old_rule, new_rule = _rule(tenant), _rule(tenant, "other")
    modifier = _modifier(tenant, rules=[old_rule], tiers=[ladder[1]["gold"]], campaign_code="SPRING", bonus_points=5)
    version = config_version(tenant)

    response = api.put(
        f"/api/v1/point-conversion/modifier/{modifier.pk}",
        {"code": "double-weekend", "multiplier": "3", "rules": [new_rule.pk]},
        format="json",
    )

    assert response.status_code == 200, response.content
    got = body_without_timestamps(response)
    assert (got["multiplier"], got["rules"], got["tiers"]) == ("3.000", [new_rule.pk], [])
    assert (got["campaign_code"], got["bonus_points"]) == ("", 0)
    modifier.refresh_from_db()
    assert list(modifier.rules.all()) == [new_rule]
    assert list(modifier.tiers.all()) == []
    assert audit_trail(tenant) == [("pointmodifier.updated", "points.pointmodifier", str(modifier.pk))]
    assert config_version(tenant) == version + 1


def test_put_modifier_requires_the_whole_object(api, tenant):
    modifier = _modifier(tenant)
    before = _state(tenant)

    errors = validation_errors(
        api.put(f"/api/v1/point-conversion/modifier/{modifier.pk}", {"multiplier": "3"}, format="json")
    )

    assert errors == {"code": ["This field is required."]}
    assert _state(tenant) == before


def test_patch_modifier_without_scope_keeps_its_rules_and_tiers(api, tenant, ladder):
    rule = _rule(tenant)
    modifier = _modifier(tenant, rules=[rule], tiers=[ladder[1]["gold"]])
    version = config_version(tenant)

    response = api.patch(f"/api/v1/point-conversion/modifier/{modifier.pk}", {"exclusive": True}, format="json")

    assert response.status_code == 200, response.content
    got = response.json()
    assert (got["exclusive"], got["rules"], got["tiers"], got["multiplier"]) == (
        True,
        [rule.pk],
        [ladder[1]["gold"].pk],
        "2.000",
    )
    assert list(modifier.rules.all()) == [rule]
    assert list(modifier.tiers.all()) == [ladder[1]["gold"]]
    assert audit_trail(tenant) == [("pointmodifier.updated", "points.pointmodifier", str(modifier.pk))]
    assert config_version(tenant) == version + 1


def test_patch_modifier_scope_replaces_only_what_it_names(api, tenant, ladder):
    rule = _rule(tenant)
    modifier = _modifier(tenant, rules=[rule], tiers=[ladder[1]["gold"]])

    response = api.patch(
        f"/api/v1/point-conversion/modifier/{modifier.pk}", {"tiers": [ladder[1]["platinum"].pk]}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["rules"], response.json()["tiers"]) == ([rule.pk], [ladder[1]["platinum"].pk])
    cleared = api.patch(f"/api/v1/point-conversion/modifier/{modifier.pk}", {"rules": []}, format="json")
    assert (cleared.json()["rules"], cleared.json()["tiers"]) == ([], [ladder[1]["platinum"].pk])
    assert list(modifier.rules.all()) == []


def test_patch_modifier_window_inverted_is_422(api, tenant):
    modifier = _modifier(tenant, starts_at=timezone.now())
    before = _state(tenant)

    response = api.patch(
        f"/api/v1/point-conversion/modifier/{modifier.pk}", {"ends_at": "2000-01-01T00:00:00Z"}, format="json"
    )

    assert validation_errors(response) == {"ends_at": ["Must be after starts_at."]}
    assert _state(tenant) == before


def test_pool_used_is_read_only(api, tenant):
    modifier = _modifier(tenant)

    response = api.patch(f"/api/v1/point-conversion/modifier/{modifier.pk}", {"pool_used": 999}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["pool_used"] == 0
    modifier.refresh_from_db()
    assert modifier.pool_used == 0


def test_delete_modifier(api, tenant, ladder):
    rule = _rule(tenant)
    modifier = _modifier(tenant, rules=[rule], tiers=[ladder[1]["gold"]])
    version = config_version(tenant)

    response = api.delete(f"/api/v1/point-conversion/modifier/{modifier.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not PointModifier.objects.filter(pk=modifier.pk).exists()
    assert PointConversionRule.objects.filter(pk=rule.pk).exists()
    assert audit_trail(tenant) == [("pointmodifier.deleted", "points.pointmodifier", str(modifier.pk))]
    assert config_version(tenant) == version + 1


def test_delete_modifier_whose_pool_gave_points_is_409_in_use(api, tenant):
    modifier = _modifier(tenant, campaign_total=100000, pool_used=1500)
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/point-conversion/modifier/{modifier.pk}"), 409, "in_use")

    assert (
        body["detail"] == "Cannot delete double-weekend: its campaign pool has given 1,500 points. Archive it instead."
    )
    assert _state(tenant) == before


# --- point policy ---------------------------------------------------------------------------------
def test_policy_reads_as_defaults_before_any_is_stored(api, tenant):
    response = api.get("/api/v1/point-policy")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "welcome_points": 0,
        "cap_per_event": None,
        "cap_per_day": None,
        "cap_per_week": None,
        "cap_per_month": None,
        "updated_at": None,
    }
    assert not PointPolicy.objects.exists()


def test_put_policy_stores_it_audited_once(api, tenant):
    version = config_version(tenant)
    body = {
        "welcome_points": 500,
        "cap_per_event": 75000,
        "cap_per_day": 100000,
        "cap_per_week": None,
        "cap_per_month": 1,
    }

    response = api.put("/api/v1/point-policy", body, format="json")

    assert response.status_code == 200, response.content
    got = response.json()
    assert got["updated_at"] is not None
    assert {k: v for k, v in got.items() if k != "updated_at"} == body
    policy = PointPolicy.objects.get(tenant=tenant)
    assert (policy.welcome_points, policy.cap_per_day, policy.cap_per_week) == (500, 100000, None)
    assert audit_trail(tenant) == [("pointpolicy.updated", "points.pointpolicy", str(policy.pk))]
    assert AuditEntry.objects.get().before is None
    assert config_version(tenant) == version + 1
    assert {k: v for k, v in api.get("/api/v1/point-policy").json().items() if k != "updated_at"} == body


def test_put_policy_replaces_it_and_resets_omitted_fields(api, tenant):
    PointPolicy.objects.create(tenant=tenant, welcome_points=500, cap_per_day=100000)
    version = config_version(tenant)

    response = api.put("/api/v1/point-policy", {"cap_per_month": 300000}, format="json")

    assert response.status_code == 200, response.content
    assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
        "welcome_points": 0,
        "cap_per_event": None,
        "cap_per_day": None,
        "cap_per_week": None,
        "cap_per_month": 300000,
    }
    assert PointPolicy.objects.count() == 1
    entry = AuditEntry.objects.get(tenant=tenant)
    assert (entry.action, entry.before["cap_per_day"], entry.after["cap_per_day"]) == (
        "pointpolicy.updated",
        100000,
        None,
    )
    assert config_version(tenant) == version + 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param(
            {"welcome_points": -1},
            {"welcome_points": ["Ensure this value is greater than or equal to 0."]},
            id="negative-welcome",
        ),
        pytest.param(
            {"cap_per_week": "lots"}, {"cap_per_week": ["A valid integer is required."]}, id="cap-not-a-number"
        ),
        pytest.param({"welcome_points": None}, {"welcome_points": ["This field may not be null."]}, id="null-welcome"),
    ],
)
def test_invalid_policy_is_422_naming_the_field_and_stores_nothing(api, tenant, body, errors):
    before = _state(tenant)

    assert validation_errors(api.put("/api/v1/point-policy", body, format="json")) == errors
    assert _state(tenant) == before


def test_policy_is_per_tenant(api, tenant, other_tenant):
    PointPolicy.objects.create(tenant=other_tenant, welcome_points=999, cap_per_day=5)

    assert api.get("/api/v1/point-policy").json()["welcome_points"] == 0
    api.put("/api/v1/point-policy", {"welcome_points": 10}, format="json")

    assert PointPolicy.objects.get(tenant=other_tenant).welcome_points == 999
    assert PointPolicy.objects.get(tenant=tenant).welcome_points == 10


# --- tenancy --------------------------------------------------------------------------------------
@pytest.mark.parametrize("resource", ["rule", "modifier"])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_tenants_object_is_404(api, tenant, foreign, resource, method):
    before = _state(tenant)
    body = {"code": "stolen", "unit_amount": "1", "status": "archived"}

    path = f"/api/v1/point-conversion/{resource}/{foreign[resource].pk}"
    response = api.get(path) if method == "get" else getattr(api, method)(path, body, format="json")

    assert assert_problem(response, 404, "not_found")["detail"] == "Not found."
    assert _state(tenant) == before


def test_missing_ids_are_404(api, tenant):
    for path in ("point-conversion/rule/999999", "point-conversion/modifier/999999"):
        assert_problem(api.get(f"/api/v1/{path}"), 404, "not_found")


def test_lists_show_only_the_callers_tenant(api, tenant, foreign):
    mine_rule, mine_modifier = _rule(tenant), _modifier(tenant)

    assert [r["id"] for r in api.get("/api/v1/point-conversion/rule").json()["results"]] == [mine_rule.pk]
    assert [m["id"] for m in api.get("/api/v1/point-conversion/modifier").json()["results"]] == [mine_modifier.pk]


def test_another_tenants_tier_type_in_a_rule_is_422(api, tenant, foreign):
    rule = _rule(tenant, "mine")
    pk = foreign["tier_type"].pk
    expected = {"tier_type": [f'Invalid pk "{pk}" - object does not exist.']}
    before = _state(tenant)

    created = api.post("/api/v1/point-conversion/rule", _base_rule(foreign["tier_type"]), format="json")
    patched = api.patch(f"/api/v1/point-conversion/rule/{rule.pk}", {"tier_type": pk}, format="json")

    assert validation_errors(created) == expected
    assert validation_errors(patched) == expected
    assert _state(tenant) == before


@pytest.mark.parametrize("field", ["rules", "tiers"])
def test_another_tenants_scope_ids_in_a_modifier_are_422(api, tenant, ladder, foreign, field):
    modifier = _modifier(tenant, "mine")
    mine = {"rules": _rule(tenant).pk, "tiers": ladder[1]["gold"].pk}[field]
    theirs = {"rules": foreign["rule"].pk, "tiers": foreign["tier"].pk}[field]
    expected = {field: [f'Invalid pk "{theirs}" - object does not exist.']}
    before = _state(tenant)

    created = api.post("/api/v1/point-conversion/modifier", _weekend(**{field: [mine, theirs]}), format="json")
    patched = api.patch(f"/api/v1/point-conversion/modifier/{modifier.pk}", {field: [theirs]}, format="json")

    assert validation_errors(created) == expected
    assert validation_errors(patched) == expected
    assert _state(tenant) == before


# --- auth, scopes, parsing ------------------------------------------------------------------------
def _writes(tenant: Any, ladder: Ladder) -> list[tuple[str, str, dict[str, Any]]]:
    rule = _rule(tenant, "held")
    spare = _rule(tenant, "spare")
    modifier = _modifier(tenant, rules=[rule])
    return [
        ("post", "/api/v1/point-conversion/rule", _base_rule(ladder[0], code="new")),
        ("put", f"/api/v1/point-conversion/rule/{rule.pk}", _base_rule(None, code="held", points_per_unit=5)),
        ("patch", f"/api/v1/point-conversion/rule/{rule.pk}", {"status": "archived"}),
        ("delete", f"/api/v1/point-conversion/rule/{spare.pk}", {}),
        ("post", "/api/v1/point-conversion/modifier", _weekend(code="new", tiers=[ladder[1]["gold"].pk])),
        ("put", f"/api/v1/point-conversion/modifier/{modifier.pk}", _weekend(rules=[rule.pk])),
        ("patch", f"/api/v1/point-conversion/modifier/{modifier.pk}", {"multiplier": "3"}),
        ("delete", f"/api/v1/point-conversion/modifier/{modifier.pk}", {}),
        ("put", "/api/v1/point-policy", {"welcome_points": 100}),
    ]


READS = ["/api/v1/point-conversion/rule", "/api/v1/point-conversion/modifier", "/api/v1/point-policy"]


def _read_paths(tenant: Any) -> list[str]:
    rule, modifier = _rule(tenant, "read"), _modifier(tenant, "read")
    return [*READS, f"/api/v1/point-conversion/rule/{rule.pk}", f"/api/v1/point-conversion/modifier/{modifier.pk}"]


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_WRITE])
def test_writes_need_the_admin_scope_and_store_nothing(api_client_for, tenant, ladder, scope):
    client = api_client_for(tenant, scope=scope)
    writes = _writes(tenant, ladder)
    before = _state(tenant)

    for method, path, body in writes:
        assert_problem(getattr(client, method)(path, body, format="json"), 403, "insufficient_scope")

    assert _state(tenant) == before


def test_every_write_succeeds_with_the_admin_scope_with_one_audit_entry_and_version_bump_each(
    api_client_for, tenant, ladder
):
    client = api_client_for(tenant, scope=SCOPE_ADMIN)
    expected = {"post": 201, "put": 200, "patch": 200, "delete": 204}

    for method, path, body in _writes(tenant, ladder):
        version, entries = config_version(tenant), AuditEntry.objects.filter(tenant=tenant).count()
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == expected[method], (method, path, response.content)
        assert AuditEntry.objects.filter(tenant=tenant).count() == entries + 1, (method, path)
        assert config_version(tenant) == version + 1, (method, path)


def test_reads_need_only_the_read_scope(api_client_for, tenant):
    client = api_client_for(tenant, scope=SCOPE_READ)

    for path in _read_paths(tenant):
        response = client.get(path)
        assert response.status_code == 200, (path, response.content)


def test_reads_without_the_read_scope_are_403(api_client_for, tenant):
    client = api_client_for(tenant, scope="privilege:audit")

    for path in _read_paths(tenant):
        assert_problem(client.get(path), 403, "insufficient_scope")


def test_no_token_is_401_and_stores_nothing(tenant, ladder):
    client = APIClient()
    reads, writes = _read_paths(tenant), _writes(tenant, ladder)
    before = _state(tenant)

    for path in reads:
        response = client.get(path)
        assert_problem(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == 'Bearer realm="privilege"'
    for method, path, body in writes:
        assert_problem(getattr(client, method)(path, body, format="json"), 401, "not_authenticated")

    assert _state(tenant) == before


def test_malformed_json_is_400_and_stores_nothing(api, tenant):
    rule, modifier = _rule(tenant), _modifier(tenant)
    before = _state(tenant)

    for method, path in [
        ("POST", "/api/v1/point-conversion/rule"),
        ("PUT", f"/api/v1/point-conversion/rule/{rule.pk}"),
        ("PATCH", f"/api/v1/point-conversion/rule/{rule.pk}"),
        ("POST", "/api/v1/point-conversion/modifier"),
        ("PUT", f"/api/v1/point-conversion/modifier/{modifier.pk}"),
        ("PATCH", f"/api/v1/point-conversion/modifier/{modifier.pk}"),
        ("PUT", "/api/v1/point-policy"),
    ]:
        response = api.generic(method, path, '{"code": "x",', content_type="application/json")
        assert_problem(response, 400, "malformed_json")

    assert _state(tenant) == before


@pytest.mark.parametrize(
    "path", ["/api/v1/point-conversion/rule", "/api/v1/point-conversion/modifier", "/api/v1/point-policy"]
)
def test_a_json_array_body_is_422_not_500(api, tenant, path):
    before = _state(tenant)
    method = "PUT" if path.endswith("policy") else "POST"

    response = api.generic(method, path, json.dumps([{"code": "x"}]), content_type="application/json")

    assert list(validation_errors(response)) == ["non_field_errors"]
    assert _state(tenant) == before

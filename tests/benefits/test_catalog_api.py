"""The configuration API of the benefits context (/api/v1/benefit, /benefit/{id}/copy,
/tier/{tierId}/benefit, /campaign/{code}/benefit, /event/code).

Every write goes through ``benefits.services``: one audit entry and one ``config_version`` bump per saved
or deleted row; a refused write stores nothing, audits nothing and leaves the version alone.
"""

import json
from typing import Any

import pytest
from django.urls import resolve
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from benefits.api import views
from benefits.models import (
    Benefit,
    CampaignBenefitMapping,
    EventCode,
    EventCodeRedemption,
    MemberBenefit,
    TierBenefitMapping,
)
from config.api import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE
from events.api.views import EventDetailView
from tests.factories import MemberFactory, hotel_ladder
from tests.helpers import assert_problem, audit_trail, body_without_timestamps, config_version, validation_errors
from tiers.models import PromotionRule, Tier, TierType

pytestmark = pytest.mark.django_db

Ladder = tuple[TierType, dict[str, Tier], PromotionRule]

# The body of API.md's ``POST /benefit`` example.
LATE_CHECKOUT = {
    "code": "late-checkout",
    "name": "Late checkout",
    "type": "custom",
    "value": {"hours": 2},
    "lifetime": "permanent",
    "duration_days": None,
    "usage_limit": None,
    "total_quantity": None,
    "exclusive_group": None,
    "priority": 0,
    "components": [],
    "is_template": False,
    "retain_on_loss": False,
}
# Every field a stored benefit renders, beyond API.md's example (which omits these).
BENEFIT_EXTRAS = {
    "valid_from": None,
    "valid_until": None,
    "criteria": [],
    "active": True,
    "description": "",
    "granted_count": 0,
}
SPEND = {"metric": "spend", "operator": "gte", "value": "5000.00", "window_days": 365}
COUNTRY = {"metric": "attribute:country", "operator": "in", "value": ["TH", "SG"]}
NORMALISED = [
    {"metric": "spend", "operator": "gte", "value": 5000, "window_days": 365},
    {"metric": "attribute:country", "operator": "in", "value": ["TH", "SG"], "window_days": None},
]
OPERATORS = "gte, gt, lte, lt, eq, ne, in"
ABSENT = object()  # a field left out of a request body


def _late(**changes: Any) -> dict[str, Any]:
    return {**LATE_CHECKOUT, **changes}


def _points_code(**changes: Any) -> dict[str, Any]:
    return {
        "code": "bonus500",
        "name": "500 bonus points",
        "action": "award_points",
        "tier": None,
        "benefit": None,
        "points": 500,
        "max_redemptions": None,
        "per_member_limit": 1,
        "valid_from": None,
        "valid_until": None,
        "active": True,
        **changes,
    }


# --- helpers --------------------------------------------------------------------------------------
def _benefit(tenant: Any, code: str = "late", *, components=(), **fields: Any) -> Benefit:
    benefit = Benefit.objects.create(tenant=tenant, code=code, **{"name": code.title(), **fields})
    benefit.components.set(components)
    return benefit


def _event_code(tenant: Any, code: str = "VIP2027", **fields: Any) -> EventCode:
    return EventCode.objects.create(tenant=tenant, code=code, **{"action": "award_points", "points": 100, **fields})


def _tier_mapping(tier: Tier, benefit: Benefit, *, inheritable: bool = True) -> TierBenefitMapping:
    return TierBenefitMapping.objects.create(tenant=tier.tenant, tier=tier, benefit=benefit, inheritable=inheritable)


def _campaign_mapping(tenant: Any, code: str, benefit: Benefit, criteria=()) -> CampaignBenefitMapping:
    return CampaignBenefitMapping.objects.create(
        tenant=tenant, campaign_code=code, benefit=benefit, criteria=list(criteria)
    )


def _grant(benefit: Benefit) -> MemberBenefit:
    return MemberBenefit.objects.create(
        tenant=benefit.tenant,
        member=MemberFactory(tenant=benefit.tenant),
        benefit=benefit,
        source="tier",
        granted_at=timezone.now(),
    )


def _state(tenant: Any) -> tuple[Any, ...]:
    """Everything a refused write must leave alone: rows, bundle contents, audit trail, config version."""
    tenant.refresh_from_db()
    return (
        tenant.config_version,
        AuditEntry.objects.count(),
        list(Benefit.objects.order_by("pk").values()),
        list(Benefit.components.through.objects.order_by("pk").values()),
        list(TierBenefitMapping.objects.order_by("pk").values()),
        list(CampaignBenefitMapping.objects.order_by("pk").values()),
        list(EventCode.objects.order_by("pk").values()),
    )


def _results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture
def foreign(other_tenant: Any) -> dict[str, Any]:
    """Globex's ladder, a benefit (mapped to its Gold tier and its SPRING campaign), a template and an
    event code."""
    _, tiers, _ = hotel_ladder(other_tenant)
    benefit = _benefit(other_tenant, "lounge")
    _tier_mapping(tiers["gold"], benefit)
    _campaign_mapping(other_tenant, "SPRING", benefit)
    return {
        "tier": tiers["gold"],
        "benefit": benefit,
        "template": _benefit(other_tenant, "pack", is_template=True),
        "event_code": _event_code(other_tenant, "THEIRS"),
    }


# --- catalog: create ------------------------------------------------------------------------------
def test_create_benefit_returns_201_with_the_stored_object_audited_once(api, tenant):
    version = config_version(tenant)

    response = api.post("/api/v1/benefit", LATE_CHECKOUT, format="json")

    assert response.status_code == 201, response.content
    benefit = Benefit.objects.get(tenant=tenant, code="late-checkout")
    assert body_without_timestamps(response) == {"id": benefit.pk, **LATE_CHECKOUT, **BENEFIT_EXTRAS}
    assert (benefit.name, benefit.value, benefit.lifetime) == ("Late checkout", {"hours": 2}, "permanent")
    assert audit_trail(tenant) == [("benefit.created", "benefits.benefit", str(benefit.pk))]
    assert AuditEntry.objects.get().actor == "service:svc-test"
    assert config_version(tenant) == version + 1


def test_create_benefit_with_only_code_and_name_takes_the_defaults(api, tenant):
    response = api.post("/api/v1/benefit", {"code": "drink", "name": "Welcome drink"}, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": Benefit.objects.get(code="drink").pk,
        "code": "drink",
        "name": "Welcome drink",
        "type": "custom",
        "value": {},
        "lifetime": "permanent",
        "duration_days": None,
        "valid_from": None,
        "valid_until": None,
        "criteria": [],
        "usage_limit": None,
        "total_quantity": None,
        "exclusive_group": None,
        "priority": 0,
        "components": [],
        "is_template": False,
        "retain_on_loss": False,
        "active": True,
        "description": "",
        "granted_count": 0,
    }


def test_create_temporary_limited_voucher_in_an_exclusive_group(api, tenant):
    body = _late(
        code="voucher-20",
        name="20% voucher",
        type="voucher",
        value={"percent": 20, "max": "50.00"},
        lifetime="temporary",
        duration_days=30,
        valid_from="2026-01-01T00:00:00+07:00",
        valid_until="2027-01-01T00:00:00Z",
        usage_limit=1,
        total_quantity=1000,
        exclusive_group="welcome",
        priority=5,
        retain_on_loss=True,
        active=False,
        description="One use within 30 days",
    )

    response = api.post("/api/v1/benefit", body, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": Benefit.objects.get(code="voucher-20").pk,
        **body,
        "valid_from": "2025-12-31T17:00:00Z",
        "criteria": [],
        "granted_count": 0,
    }


def test_create_conditional_benefit_normalises_its_criteria(api, tenant):
    body = _late(code="spa", name="Spa access", lifetime="conditional", criteria=[SPEND, COUNTRY])

    response = api.post("/api/v1/benefit", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["criteria"] == NORMALISED
    assert Benefit.objects.get(code="spa").criteria == NORMALISED


def test_create_temporary_benefit_with_only_an_end_date(api, tenant):
    body = _late(lifetime="temporary", valid_until="2026-12-31T23:59:59Z")

    response = api.post("/api/v1/benefit", body, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["duration_days"], response.json()["valid_until"]) == (None, "2026-12-31T23:59:59Z")


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param(
            {"lifetime": "temporary"},
            {"duration_days": ["A temporary benefit needs duration_days or valid_until."]},
            id="temporary-without-duration",
        ),
        pytest.param(
            {"lifetime": "conditional"},
            {"criteria": ["At least one criterion is required."]},
            id="conditional-without-criteria",
        ),
        pytest.param(
            {"criteria": [SPEND]}, {"criteria": ["Only a conditional benefit has criteria."]}, id="criteria-unused"
        ),
        pytest.param({"type": "upgrade"}, {"type": ['"upgrade" is not a valid choice.']}, id="unknown-type"),
        pytest.param({"lifetime": "forever"}, {"lifetime": ['"forever" is not a valid choice.']}, id="lifetime"),
        pytest.param(
            {"lifetime": "conditional", "criteria": [{"metric": "spend", "operator": "about", "value": 1}]},
            {"criteria": [f"Criterion 1: operator 'about' is not one of {OPERATORS}."]},
            id="bad-criterion",
        ),
        pytest.param(
            {"lifetime": "conditional", "criteria": {"metric": "spend"}},
            {"criteria": ["At least one criterion is required."]},
            id="criteria-not-a-list",
        ),
        pytest.param({"value": [1, 2]}, {"value": ["A JSON object."]}, id="value-not-an-object"),
        pytest.param({"value": "2 hours"}, {"value": ["A JSON object."]}, id="value-a-string"),
        pytest.param(
            {"valid_from": "2026-06-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"},
            {"valid_until": ["Must be after valid_from."]},
            id="window-inverted",
        ),
        pytest.param(
            {"usage_limit": -1},
            {"usage_limit": ["Ensure this value is greater than or equal to 0."]},
            id="negative-usage-limit",
        ),
        pytest.param(
            {"total_quantity": "many"}, {"total_quantity": ["A valid integer is required."]}, id="quantity-not-number"
        ),
        pytest.param(
            {"components": [999999]},
            {"components": ['Invalid pk "999999" - object does not exist.']},
            id="unknown-component",
        ),
        pytest.param(
            {"components": 3},
            {"components": ['Expected a list of items but got type "int".']},
            id="components-not-a-list",
        ),
        pytest.param({"name": ""}, {"name": ["This field may not be blank."]}, id="blank-name"),
    ],
)
def test_invalid_benefit_is_422_naming_the_field_and_stores_nothing(api, tenant, changes, errors):
    before = _state(tenant)

    response = api.post("/api/v1/benefit", _late(**changes), format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


@pytest.mark.parametrize("changes", [{"code": "late checkout!"}, {"code": ""}, {"exclusive_group": "two words"}])
def test_bad_slugs_in_a_benefit_are_422_naming_the_field(api, tenant, changes):
    before = _state(tenant)

    assert list(validation_errors(api.post("/api/v1/benefit", _late(**changes), format="json"))) == list(changes)
    assert _state(tenant) == before


def test_missing_benefit_code_and_name_are_named(api, tenant):
    before = _state(tenant)

    errors = validation_errors(api.post("/api/v1/benefit", {"type": "voucher"}, format="json"))

    assert errors == {"code": ["This field is required."], "name": ["This field is required."]}
    assert _state(tenant) == before


def test_duplicate_benefit_code_is_409_and_stores_nothing(api, tenant):
    _benefit(tenant, "late-checkout")
    before = _state(tenant)

    body = assert_problem(api.post("/api/v1/benefit", LATE_CHECKOUT, format="json"), 409, "duplicate_code")

    assert body["errors"] == {"code": ["Benefit 'late-checkout' already exists."]}
    assert _state(tenant) == before


def test_same_benefit_code_in_another_tenant_is_fine(api, tenant, other_tenant):
    _benefit(other_tenant, "late-checkout")

    response = api.post("/api/v1/benefit", LATE_CHECKOUT, format="json")

    assert response.status_code == 201, response.content
    assert Benefit.objects.filter(code="late-checkout").count() == 2


# --- catalog: bundles -----------------------------------------------------------------------------
def test_create_bundle_with_its_components(api, tenant):
    late, drink = _benefit(tenant, "late"), _benefit(tenant, "drink")

    response = api.post("/api/v1/benefit", _late(code="pack", components=[late.pk, drink.pk]), format="json")

    assert response.status_code == 201, response.content
    bundle = Benefit.objects.get(code="pack")
    assert sorted(response.json()["components"]) == sorted([late.pk, drink.pk])
    assert set(bundle.components.all()) == {late, drink}
    entry = AuditEntry.objects.get(tenant=tenant)
    assert sorted(entry.after["components"]) == sorted([late.pk, drink.pk])


def test_a_bundle_containing_itself_is_422(api, tenant):
    late = _benefit(tenant, "late")
    bundle = _benefit(tenant, "pack", components=[late])
    before = _state(tenant)

    patched = api.patch(f"/api/v1/benefit/{bundle.pk}", {"components": [late.pk, bundle.pk]}, format="json")
    put = api.put(f"/api/v1/benefit/{bundle.pk}", _late(code="pack", components=[bundle.pk]), format="json")

    assert validation_errors(patched) == {"components": ["A bundle cannot contain itself."]}
    assert validation_errors(put) == {"components": ["A bundle cannot contain itself."]}
    assert _state(tenant) == before


# --- catalog: read --------------------------------------------------------------------------------
def test_list_benefits_in_code_order_with_filters(api, tenant, foreign):
    _benefit(tenant, "late", type="custom", exclusive_group="checkout")
    _benefit(tenant, "early", type="custom", exclusive_group="checkout", priority=2)
    _benefit(tenant, "voucher", type="voucher", lifetime="temporary", duration_days=30)
    _benefit(tenant, "pack", is_template=True, active=False)

    def codes(query: str = "") -> list[str]:
        return [b["code"] for b in _results(api.get(f"/api/v1/benefit{query}"))]

    assert codes() == ["early", "late", "pack", "voucher"]
    assert codes("?type=voucher") == ["voucher"]
    assert codes("?lifetime=temporary") == ["voucher"]
    assert codes("?lifetime=permanent&type=custom") == ["early", "late", "pack"]
    assert codes("?is_template=true") == ["pack"]
    assert codes("?is_template=false") == ["early", "late", "voucher"]
    assert codes("?active=false") == ["pack"]
    assert codes("?exclusive_group=checkout") == ["early", "late"]
    assert codes("?code=late") == ["late"]
    assert codes("?code=lounge") == []
    page = api.get("/api/v1/benefit?page_size=3&page=2").json()
    assert (page["count"], [b["code"] for b in page["results"]]) == (4, ["voucher"])


@pytest.mark.parametrize("query", ["?type=upgrade", "?lifetime=forever"])
def test_filter_benefits_by_unknown_choice_is_422(api, tenant, query):
    assert list(validation_errors(api.get(f"/api/v1/benefit{query}"))) == [query[1:].split("=")[0]]


def test_list_benefits_does_not_query_per_row(api, tenant, django_assert_max_num_queries):
    late, drink = _benefit(tenant, "late"), _benefit(tenant, "drink")
    for n in range(5):
        _benefit(tenant, f"pack{n}", components=[late, drink])

    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/benefit")

    assert response.json()["count"] == 7


def test_retrieve_benefit(api, tenant):
    late = _benefit(tenant, "late")
    bundle = _benefit(
        tenant,
        "spa-pack",
        name="Spa pack",
        type="discount",
        value={"percent": 10},
        lifetime="conditional",
        criteria=NORMALISED,
        components=[late],
        granted_count=3,
        description="Spa",
    )

    response = api.get(f"/api/v1/benefit/{bundle.pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        "id": bundle.pk,
        "code": "spa-pack",
        "name": "Spa pack",
        "type": "discount",
        "value": {"percent": 10},
        "lifetime": "conditional",
        "duration_days": None,
        "valid_from": None,
        "valid_until": None,
        "criteria": NORMALISED,
        "usage_limit": None,
        "total_quantity": None,
        "exclusive_group": None,
        "priority": 0,
        "components": [late.pk],
        "is_template": False,
        "retain_on_loss": False,
        "active": True,
        "description": "Spa",
        "granted_count": 3,
    }


# --- catalog: update ------------------------------------------------------------------------------
def test_put_benefit_replaces_it_and_resets_omitted_fields_to_their_defaults(api, tenant):
    late = _benefit(tenant, "late")
    bundle = _benefit(
        tenant, "pack", components=[late], priority=4, usage_limit=2, exclusive_group="g", description="old"
    )
    version = config_version(tenant)

    response = api.put(
        f"/api/v1/benefit/{bundle.pk}",
        {"code": "pack", "name": "Pack", "type": "voucher", "value": {"amount": "10.00"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    got = body_without_timestamps(response)
    assert (got["type"], got["value"], got["components"]) == ("voucher", {"amount": "10.00"}, [])
    assert (got["priority"], got["usage_limit"], got["exclusive_group"], got["description"]) == (0, None, None, "")
    bundle.refresh_from_db()
    assert (bundle.type, bundle.usage_limit, list(bundle.components.all())) == ("voucher", None, [])
    entry = AuditEntry.objects.get(tenant=tenant)
    assert (entry.action, entry.target_id) == ("benefit.updated", str(bundle.pk))
    assert (entry.before["components"], entry.after["components"]) == ([late.pk], [])
    assert (entry.before["usage_limit"], entry.after["usage_limit"]) == (2, None)
    assert config_version(tenant) == version + 1


def test_put_benefit_requires_the_whole_object(api, tenant):
    late = _benefit(tenant, "late")
    before = _state(tenant)

    errors = validation_errors(api.put(f"/api/v1/benefit/{late.pk}", {"priority": 3}, format="json"))

    assert errors == {"code": ["This field is required."], "name": ["This field is required."]}
    assert _state(tenant) == before


def test_put_benefit_to_a_taken_code_is_409(api, tenant):
    _benefit(tenant, "taken")
    late = _benefit(tenant, "late")
    before = _state(tenant)

    response = api.put(f"/api/v1/benefit/{late.pk}", _late(code="taken"), format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {"code": ["Benefit 'taken' already exists."]}
    assert _state(tenant) == before


def test_patch_benefit_without_components_keeps_them(api, tenant):
    late = _benefit(tenant, "late")
    bundle = _benefit(tenant, "pack", components=[late], usage_limit=2)
    version = config_version(tenant)

    response = api.patch(f"/api/v1/benefit/{bundle.pk}", {"active": False}, format="json")

    assert response.status_code == 200, response.content
    got = response.json()
    assert (got["active"], got["components"], got["usage_limit"], got["name"]) == (False, [late.pk], 2, "Pack")
    assert list(bundle.components.all()) == [late]
    assert audit_trail(tenant) == [("benefit.updated", "benefits.benefit", str(bundle.pk))]
    assert config_version(tenant) == version + 1


def test_patch_benefit_components_replaces_them(api, tenant):
    late, drink = _benefit(tenant, "late"), _benefit(tenant, "drink")
    bundle = _benefit(tenant, "pack", components=[late])

    response = api.patch(f"/api/v1/benefit/{bundle.pk}", {"components": [drink.pk]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["components"] == [drink.pk]
    cleared = api.patch(f"/api/v1/benefit/{bundle.pk}", {"components": []}, format="json")
    assert cleared.json()["components"] == []
    assert list(bundle.components.all()) == []


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param(
            {"lifetime": "temporary"},
            {"duration_days": ["A temporary benefit needs duration_days or valid_until."]},
            id="temporary-without-duration",
        ),
        pytest.param(
            {"lifetime": "conditional"},
            {"criteria": ["At least one criterion is required."]},
            id="conditional-without-criteria",
        ),
        pytest.param(
            {"lifetime": "conditional", "criteria": [{"metric": "nights", "operator": "gte", "value": 1}]},
            {
                "criteria": [
                    "Criterion 1: metric 'nights' is not one of spend, transactions, points, days_inactive, "
                    "tenure_days, quantity:<name>, events:<transaction|mission|campaign|promo|engagement|refund|"
                    "custom>, attribute:<name>."
                ]
            },
            id="bad-metric",
        ),
    ],
)
def test_patch_benefit_breaking_a_rule_is_422(api, tenant, changes, errors):
    late = _benefit(tenant, "late")
    before = _state(tenant)

    assert validation_errors(api.patch(f"/api/v1/benefit/{late.pk}", changes, format="json")) == errors
    assert _state(tenant) == before


def test_patch_conditional_benefit_to_permanent_must_drop_its_criteria(api, tenant):
    spa = _benefit(tenant, "spa", lifetime="conditional", criteria=NORMALISED)
    before = _state(tenant)

    refused = api.patch(f"/api/v1/benefit/{spa.pk}", {"lifetime": "permanent"}, format="json")
    assert validation_errors(refused) == {"criteria": ["Only a conditional benefit has criteria."]}
    assert _state(tenant) == before

    response = api.patch(f"/api/v1/benefit/{spa.pk}", {"lifetime": "permanent", "criteria": []}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["lifetime"], response.json()["criteria"]) == ("permanent", [])


def test_granted_count_is_read_only_and_kept_on_update(api, tenant):
    late = _benefit(tenant, "late", total_quantity=10)
    Benefit.objects.filter(pk=late.pk).update(granted_count=4)

    patched = api.patch(f"/api/v1/benefit/{late.pk}", {"granted_count": 999, "name": "Late"}, format="json")
    put = api.put(f"/api/v1/benefit/{late.pk}", _late(code="late", granted_count=0), format="json")

    assert (patched.status_code, patched.json()["granted_count"]) == (200, 4)
    assert (put.status_code, put.json()["granted_count"]) == (200, 4)
    late.refresh_from_db()
    assert late.granted_count == 4


# --- catalog: delete ------------------------------------------------------------------------------
def test_delete_benefit(api, tenant):
    late = _benefit(tenant, "late")
    version = config_version(tenant)

    response = api.delete(f"/api/v1/benefit/{late.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Benefit.objects.filter(pk=late.pk).exists()
    assert audit_trail(tenant) == [("benefit.deleted", "benefits.benefit", str(late.pk))]
    assert config_version(tenant) == version + 1


def test_delete_bundle_keeps_its_components(api, tenant):
    late = _benefit(tenant, "late")
    bundle = _benefit(tenant, "pack", components=[late])

    assert api.delete(f"/api/v1/benefit/{bundle.pk}").status_code == 204
    assert Benefit.objects.filter(pk=late.pk).exists()


def test_delete_benefit_in_use_is_409_naming_what_holds_it(api, tenant, ladder):
    late = _benefit(tenant, "late", name="Late checkout")
    _grant(late)
    _tier_mapping(ladder[1]["gold"], late)
    _tier_mapping(ladder[1]["silver"], late)
    _campaign_mapping(tenant, "SPRING", late)
    _event_code(tenant, action="grant_benefit", points=None, benefit=late)
    _benefit(tenant, "pack", components=[late])
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/benefit/{late.pk}"), 409, "in_use")

    assert body["detail"] == (
        "Cannot delete Late checkout: granted 1 time; mapped to 2 tiers; mapped to 1 campaign; "
        "given by 1 event code; part of 1 bundle. Archive it instead."
    )
    assert _state(tenant) == before


def test_delete_component_of_a_bundle_is_409_in_use(api, tenant):
    late = _benefit(tenant, "late", name="Late checkout")
    _benefit(tenant, "pack", components=[late])
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/benefit/{late.pk}"), 409, "in_use")

    assert body["detail"] == "Cannot delete Late checkout: part of 1 bundle. Archive it instead."
    assert _state(tenant) == before


# --- create from template -------------------------------------------------------------------------
def test_copy_template_creates_a_benefit_with_its_contents_audited_once(api, tenant):
    late, drink = _benefit(tenant, "late"), _benefit(tenant, "drink")
    template = _benefit(
        tenant,
        "pack",
        name="Welcome pack",
        type="voucher",
        value={"amount": "25.00"},
        lifetime="temporary",
        duration_days=90,
        usage_limit=1,
        exclusive_group="welcome",
        priority=3,
        retain_on_loss=True,
        description="Copied",
        is_template=True,
        components=[late, drink],
    )
    version = config_version(tenant)

    response = api.post(f"/api/v1/benefit/{template.pk}/copy", {"code": "pack-2027"}, format="json")

    assert response.status_code == 201, response.content
    copy = Benefit.objects.get(tenant=tenant, code="pack-2027")
    got = body_without_timestamps(response)
    assert sorted(got.pop("components")) == sorted([late.pk, drink.pk])
    assert got == {
        "id": copy.pk,
        "code": "pack-2027",
        "name": "Welcome pack",
        "type": "voucher",
        "value": {"amount": "25.00"},
        "lifetime": "temporary",
        "duration_days": 90,
        "valid_from": None,
        "valid_until": None,
        "criteria": [],
        "usage_limit": 1,
        "total_quantity": None,
        "exclusive_group": "welcome",
        "priority": 3,
        "is_template": False,
        "retain_on_loss": True,
        "active": True,
        "description": "Copied",
        "granted_count": 0,
    }
    assert set(copy.components.all()) == {late, drink}
    assert audit_trail(tenant) == [("benefit.created", "benefits.benefit", str(copy.pk))]
    assert config_version(tenant) == version + 1
    template.refresh_from_db()
    assert (template.is_template, template.code) == (True, "pack")


def test_copy_template_with_a_name(api, tenant):
    template = _benefit(tenant, "pack", name="Welcome pack", is_template=True)

    response = api.post(
        f"/api/v1/benefit/{template.pk}/copy", {"code": "pack-vip", "name": "VIP welcome pack"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert (response.json()["code"], response.json()["name"]) == ("pack-vip", "VIP welcome pack")


def test_copy_of_a_benefit_that_is_not_a_template_is_422(api, tenant):
    late = _benefit(tenant, "late")
    before = _state(tenant)

    response = api.post(f"/api/v1/benefit/{late.pk}/copy", {"code": "late-2"}, format="json")

    assert validation_errors(response) == {"template": ["late is not a template."]}
    assert _state(tenant) == before


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({}, {"code": ["This field is required."]}, id="no-code"),
        pytest.param(
            {"code": "two words"},
            {"code": ['Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.']},
            id="bad-code",
        ),
        pytest.param(
            {"code": "x", "name": "n" * 201},
            {"name": ["Ensure this field has no more than 200 characters."]},
            id="long-name",
        ),
    ],
)
def test_invalid_copy_is_422(api, tenant, body, errors):
    template = _benefit(tenant, "pack", is_template=True)
    before = _state(tenant)

    assert validation_errors(api.post(f"/api/v1/benefit/{template.pk}/copy", body, format="json")) == errors
    assert _state(tenant) == before


def test_copy_to_a_taken_code_is_409(api, tenant):
    template = _benefit(tenant, "pack", is_template=True)
    _benefit(tenant, "taken")
    before = _state(tenant)

    response = api.post(f"/api/v1/benefit/{template.pk}/copy", {"code": "taken"}, format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {"code": ["Benefit 'taken' already exists."]}
    assert _state(tenant) == before


# --- tier mappings --------------------------------------------------------------------------------
def test_assign_benefit_to_a_tier_is_201_audited_once(api, tenant, ladder):
    gold = ladder[1]["gold"]
    late = _benefit(tenant, "late")
    version = config_version(tenant)

    response = api.post(f"/api/v1/tier/{gold.pk}/benefit", {"benefit": late.pk, "inheritable": True}, format="json")

    assert response.status_code == 201, response.content
    mapping = TierBenefitMapping.objects.get(tier=gold, benefit=late)
    assert body_without_timestamps(response, "created_at") == {
        "id": mapping.pk,
        "tier": gold.pk,
        "benefit": late.pk,
        "inheritable": True,
    }
    assert mapping.tenant == tenant
    assert audit_trail(tenant) == [("tierbenefitmapping.created", "benefits.tierbenefitmapping", str(mapping.pk))]
    assert config_version(tenant) == version + 1


def test_assign_defaults_to_inheritable(api, tenant, ladder):
    late = _benefit(tenant, "late")

    response = api.post(f"/api/v1/tier/{ladder[1]['gold'].pk}/benefit", {"benefit": late.pk}, format="json")

    assert (response.status_code, response.json()["inheritable"]) == (201, True)


def test_assigning_an_assigned_benefit_again_is_200_and_updates_it(api, tenant, ladder):
    gold = ladder[1]["gold"]
    late = _benefit(tenant, "late")
    mapping = _tier_mapping(gold, late, inheritable=True)
    version = config_version(tenant)

    response = api.post(f"/api/v1/tier/{gold.pk}/benefit", {"benefit": late.pk, "inheritable": False}, format="json")

    assert response.status_code == 200, response.content
    assert body_without_timestamps(response, "created_at") == {
        "id": mapping.pk,
        "tier": gold.pk,
        "benefit": late.pk,
        "inheritable": False,
    }
    assert list(TierBenefitMapping.objects.values_list("pk", "inheritable")) == [(mapping.pk, False)]
    entry = AuditEntry.objects.get(tenant=tenant)
    assert (entry.action, entry.before["inheritable"], entry.after["inheritable"]) == (
        "tierbenefitmapping.updated",
        True,
        False,
    )
    assert config_version(tenant) == version + 1


def test_list_a_tiers_benefits_in_benefit_code_order(api, tenant, ladder, foreign):
    gold, silver = ladder[1]["gold"], ladder[1]["silver"]
    late, drink, lounge = _benefit(tenant, "late"), _benefit(tenant, "drink"), _benefit(tenant, "lounge")
    m_late = _tier_mapping(gold, late)
    m_drink = _tier_mapping(gold, drink, inheritable=False)
    _tier_mapping(silver, lounge)

    results = _results(api.get(f"/api/v1/tier/{gold.pk}/benefit"))

    assert [{k: v for k, v in r.items() if k != "created_at"} for r in results] == [
        {"id": m_drink.pk, "tier": gold.pk, "benefit": drink.pk, "inheritable": False},
        {"id": m_late.pk, "tier": gold.pk, "benefit": late.pk, "inheritable": True},
    ]
    assert _results(api.get(f"/api/v1/tier/{ladder[1]['platinum'].pk}/benefit")) == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({}, {"benefit": ["This field is required."]}, id="no-benefit"),
        pytest.param(
            {"benefit": 999999}, {"benefit": ['Invalid pk "999999" - object does not exist.']}, id="unknown-benefit"
        ),
        pytest.param(
            {"benefit": "late"},
            {"benefit": ["Incorrect type. Expected pk value, received str."]},
            id="benefit-not-an-id",
        ),
        pytest.param({"benefit": None}, {"benefit": ["This field may not be null."]}, id="null-benefit"),
    ],
)
def test_invalid_tier_assignment_is_422(api, tenant, ladder, body, errors):
    _benefit(tenant, "late")
    before = _state(tenant)

    response = api.post(f"/api/v1/tier/{ladder[1]['gold'].pk}/benefit", body, format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


def test_unassign_benefit_from_a_tier(api, tenant, ladder):
    gold = ladder[1]["gold"]
    late = _benefit(tenant, "late")
    mapping = _tier_mapping(gold, late)
    _tier_mapping(ladder[1]["silver"], late)
    version = config_version(tenant)

    response = api.delete(f"/api/v1/tier/{gold.pk}/benefit/{late.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert list(TierBenefitMapping.objects.values_list("tier__code", flat=True)) == ["silver"]
    assert Benefit.objects.filter(pk=late.pk).exists()
    assert audit_trail(tenant) == [("tierbenefitmapping.deleted", "benefits.tierbenefitmapping", str(mapping.pk))]
    assert config_version(tenant) == version + 1


def test_unassign_a_benefit_not_mapped_to_the_tier_is_404(api, tenant, ladder):
    late = _benefit(tenant, "late")
    _tier_mapping(ladder[1]["silver"], late)
    before = _state(tenant)

    for path in (f"tier/{ladder[1]['gold'].pk}/benefit/{late.pk}", f"tier/{ladder[1]['gold'].pk}/benefit/999999"):
        assert_problem(api.delete(f"/api/v1/{path}"), 404, "not_found")

    assert _state(tenant) == before


def test_tier_benefit_routes_do_not_clash_with_the_tier_routes(api, tenant, ladder):
    gold = ladder[1]["gold"]

    assert resolve(f"/api/v1/tier/{gold.pk}/benefit").func.view_class is views.TierBenefitListCreateView
    assert resolve(f"/api/v1/tier/{gold.pk}/benefit/1").func.view_class is views.TierBenefitDetailView
    assert api.get(f"/api/v1/tier/{gold.pk}").json()["code"] == "gold"


# --- campaign mappings ----------------------------------------------------------------------------
def test_assign_benefit_to_a_campaign_is_201_with_normalised_criteria(api, tenant):
    late = _benefit(tenant, "late")
    version = config_version(tenant)

    response = api.post(
        "/api/v1/campaign/SPRING/benefit", {"benefit": late.pk, "criteria": [SPEND, COUNTRY]}, format="json"
    )

    assert response.status_code == 201, response.content
    mapping = CampaignBenefitMapping.objects.get(tenant=tenant)
    assert body_without_timestamps(response, "created_at") == {
        "id": mapping.pk,
        "campaign_code": "SPRING",
        "benefit": late.pk,
        "criteria": NORMALISED,
    }
    assert (mapping.campaign_code, mapping.criteria) == ("SPRING", NORMALISED)
    assert audit_trail(tenant) == [
        ("campaignbenefitmapping.created", "benefits.campaignbenefitmapping", str(mapping.pk))
    ]
    assert config_version(tenant) == version + 1


def test_assign_campaign_benefit_without_criteria(api, tenant):
    late = _benefit(tenant, "late")

    response = api.post("/api/v1/campaign/launch-2026/benefit", {"benefit": late.pk}, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["campaign_code"], response.json()["criteria"]) == ("launch-2026", [])


def test_assigning_a_campaign_benefit_again_is_200_and_replaces_its_criteria(api, tenant):
    late = _benefit(tenant, "late")
    mapping = _campaign_mapping(tenant, "SPRING", late, criteria=NORMALISED)
    version = config_version(tenant)

    response = api.post("/api/v1/campaign/SPRING/benefit", {"benefit": late.pk}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["criteria"]) == (mapping.pk, [])
    mapping.refresh_from_db()
    assert mapping.criteria == []
    assert CampaignBenefitMapping.objects.count() == 1
    assert audit_trail(tenant) == [
        ("campaignbenefitmapping.updated", "benefits.campaignbenefitmapping", str(mapping.pk))
    ]
    assert config_version(tenant) == version + 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({"benefit": ABSENT}, {"benefit": ["This field is required."]}, id="no-benefit"),
        pytest.param(
            {"benefit": 999999}, {"benefit": ['Invalid pk "999999" - object does not exist.']}, id="unknown-benefit"
        ),
        pytest.param(
            {"criteria": [{"metric": "spend", "operator": "gte"}]},
            {"criteria": ["Criterion 1: value is required."]},
            id="criterion-without-value",
        ),
        pytest.param(
            {"criteria": "spend >= 5"}, {"criteria": ["At least one criterion is required."]}, id="criteria-a-string"
        ),
    ],
)
def test_invalid_campaign_assignment_is_422(api, tenant, body, errors):
    late = _benefit(tenant, "late")
    before = _state(tenant)

    payload = {k: v for k, v in {"benefit": late.pk, **body}.items() if v is not ABSENT}

    response = api.post("/api/v1/campaign/SPRING/benefit", payload, format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


def test_campaign_code_longer_than_64_characters_is_422(api, tenant):
    late = _benefit(tenant, "late")
    before = _state(tenant)

    response = api.post(f"/api/v1/campaign/{'c' * 65}/benefit", {"benefit": late.pk}, format="json")

    assert validation_errors(response) == {
        "campaign_code": ["Ensure this value has at most 64 characters (it has 65)."]
    }
    assert _state(tenant) == before


def test_list_a_campaigns_benefits_of_the_callers_tenant_only(api, tenant, foreign):
    late, drink = _benefit(tenant, "late"), _benefit(tenant, "drink")
    m_late = _campaign_mapping(tenant, "SPRING", late)
    m_drink = _campaign_mapping(tenant, "SPRING", drink, criteria=NORMALISED)
    _campaign_mapping(tenant, "AUTUMN", late)

    results = _results(api.get("/api/v1/campaign/SPRING/benefit"))

    assert [(r["id"], r["benefit"], r["criteria"]) for r in results] == [
        (m_drink.pk, drink.pk, NORMALISED),
        (m_late.pk, late.pk, []),
    ]
    assert _results(api.get("/api/v1/campaign/spring/benefit")) == []
    assert _results(api.get("/api/v1/campaign/NONE/benefit")) == []


def test_unassign_benefit_from_a_campaign(api, tenant):
    late = _benefit(tenant, "late")
    mapping = _campaign_mapping(tenant, "SPRING", late)
    _campaign_mapping(tenant, "AUTUMN", late)
    version = config_version(tenant)

    response = api.delete(f"/api/v1/campaign/SPRING/benefit/{late.pk}")

    assert response.status_code == 204
    assert list(CampaignBenefitMapping.objects.values_list("campaign_code", flat=True)) == ["AUTUMN"]
    assert audit_trail(tenant) == [
        ("campaignbenefitmapping.deleted", "benefits.campaignbenefitmapping", str(mapping.pk))
    ]
    assert config_version(tenant) == version + 1


def test_unassign_a_benefit_not_mapped_to_the_campaign_is_404(api, tenant, foreign):
    late = _benefit(tenant, "late")
    _campaign_mapping(tenant, "AUTUMN", late)
    before = _state(tenant)

    for path in (
        f"campaign/SPRING/benefit/{late.pk}",
        "campaign/SPRING/benefit/999999",
        f"campaign/SPRING/benefit/{foreign['benefit'].pk}",  # globex's mapping of its own benefit
    ):
        assert_problem(api.delete(f"/api/v1/{path}"), 404, "not_found")

    assert _state(tenant) == before
    assert CampaignBenefitMapping.objects.filter(benefit=foreign["benefit"]).exists()


# --- event codes ----------------------------------------------------------------------------------
def test_create_event_code_returns_201_in_capitals_audited_once(api, tenant):
    version = config_version(tenant)

    response = api.post("/api/v1/event/code", _points_code(code=" Bonus500 "), format="json")

    assert response.status_code == 201, response.content
    code = EventCode.objects.get(tenant=tenant)
    assert body_without_timestamps(response) == {"id": code.pk, **_points_code(code="BONUS500"), "redemptions": 0}
    assert code.code == "BONUS500"
    assert audit_trail(tenant) == [("eventcode.created", "benefits.eventcode", str(code.pk))]
    assert config_version(tenant) == version + 1


def test_create_event_code_with_only_code_action_and_target_takes_the_defaults(api, tenant, ladder):
    platinum = ladder[1]["platinum"]

    response = api.post(
        "/api/v1/event/code", {"code": "vipinvite2027", "action": "promote_tier", "tier": platinum.pk}, format="json"
    )

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": EventCode.objects.get().pk,
        "code": "VIPINVITE2027",
        "name": "",
        "action": "promote_tier",
        "tier": platinum.pk,
        "benefit": None,
        "points": None,
        "max_redemptions": None,
        "per_member_limit": 1,
        "valid_from": None,
        "valid_until": None,
        "active": True,
        "redemptions": 0,
    }


def test_create_single_use_benefit_code_with_a_window(api, tenant):
    late = _benefit(tenant, "late")
    body = _points_code(
        code="LATE1",
        action="grant_benefit",
        benefit=late.pk,
        points=None,
        max_redemptions=1,
        per_member_limit=1,
        valid_from="2026-01-01T00:00:00+07:00",
        valid_until="2026-02-01T00:00:00Z",
        active=False,
    )

    response = api.post("/api/v1/event/code", body, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": EventCode.objects.get().pk,
        **body,
        "valid_from": "2025-12-31T17:00:00Z",
        "redemptions": 0,
    }


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param(
            {"action": "promote_tier", "points": None}, {"tier": ["Required for promote_tier."]}, id="no-tier"
        ),
        pytest.param(
            {"action": "grant_benefit", "points": None}, {"benefit": ["Required for grant_benefit."]}, id="no-benefit"
        ),
        pytest.param({"points": None}, {"points": ["Required for award_points."]}, id="no-points"),
        pytest.param(
            {"action": "promote_tier"},
            {"tier": ["Required for promote_tier."], "points": ["Not used by promote_tier; leave it empty."]},
            id="wrong-target",
        ),
        pytest.param({"action": "refund"}, {"action": ['"refund" is not a valid choice.']}, id="unknown-action"),
        pytest.param(
            {"valid_from": "2026-06-01T00:00:00Z", "valid_until": "2026-06-01T00:00:00Z"},
            {"valid_until": ["Must be after valid_from."]},
            id="window-empty",
        ),
        pytest.param(
            {"per_member_limit": 0},
            {"per_member_limit": ["Ensure this value is greater than or equal to 1."]},
            id="per-member-zero",
        ),
        pytest.param(
            {"max_redemptions": -1},
            {"max_redemptions": ["Ensure this value is greater than or equal to 0."]},
            id="negative-max",
        ),
        pytest.param({"points": -5}, {"points": ["Ensure this value is greater than or equal to 0."]}, id="neg-points"),
        pytest.param({"code": "   "}, {"code": ["This field may not be blank."]}, id="blank-code"),
        pytest.param(
            {"code": "C" * 65}, {"code": ["Ensure this field has no more than 64 characters."]}, id="long-code"
        ),
        pytest.param(
            {"action": "promote_tier", "points": None, "tier": 999999},
            {"tier": ['Invalid pk "999999" - object does not exist.']},
            id="unknown-tier",
        ),
    ],
)
def test_invalid_event_code_is_422_naming_the_field_and_stores_nothing(api, tenant, changes, errors):
    before = _state(tenant)

    response = api.post("/api/v1/event/code", _points_code(**changes), format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


def test_an_event_code_with_an_extra_target_names_it(api, tenant, ladder):
    late = _benefit(tenant, "late")
    before = _state(tenant)

    response = api.post(
        "/api/v1/event/code",
        _points_code(tier=ladder[1]["gold"].pk, benefit=late.pk),
        format="json",
    )

    assert validation_errors(response) == {
        "tier": ["Not used by award_points; leave it empty."],
        "benefit": ["Not used by award_points; leave it empty."],
    }
    assert _state(tenant) == before


def test_missing_event_code_fields_are_named(api, tenant):
    before = _state(tenant)

    errors = validation_errors(api.post("/api/v1/event/code", {"points": 5}, format="json"))

    assert errors == {"code": ["This field is required."], "action": ["This field is required."]}
    assert _state(tenant) == before


@pytest.mark.parametrize("taken", ["bonus500", "Bonus500", " BONUS500"])
def test_duplicate_event_code_is_409_case_insensitively(api, tenant, taken):
    _event_code(tenant, "BONUS500")
    before = _state(tenant)

    response = api.post("/api/v1/event/code", _points_code(code=taken), format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {
        "code": ["Event code 'BONUS500' already exists."]
    }
    assert _state(tenant) == before


def test_same_event_code_in_another_tenant_is_fine(api, tenant, other_tenant):
    _event_code(other_tenant, "BONUS500")

    response = api.post("/api/v1/event/code", _points_code(), format="json")

    assert response.status_code == 201, response.content
    assert EventCode.objects.filter(code="BONUS500").count() == 2


def test_list_and_filter_event_codes(api, tenant, ladder, foreign):
    _event_code(tenant, "VIP2027", action="promote_tier", points=None, tier=ladder[1]["platinum"])
    _event_code(tenant, "BONUS500", points=500)
    _event_code(tenant, "OLD", active=False)

    def codes(query: str = "") -> list[str]:
        return [c["code"] for c in _results(api.get(f"/api/v1/event/code{query}"))]

    assert codes() == ["BONUS500", "OLD", "VIP2027"]
    assert codes("?code=vip2027") == ["VIP2027"]
    assert codes("?code=Bonus500") == ["BONUS500"]
    assert codes("?code=VIP") == []
    assert codes("?code=THEIRS") == []
    assert codes("?action=award_points") == ["BONUS500", "OLD"]
    assert codes("?action=award_points&active=true") == ["BONUS500"]
    assert codes("?active=false") == ["OLD"]
    assert list(validation_errors(api.get("/api/v1/event/code?action=refund"))) == ["action"]


def test_list_event_codes_does_not_query_per_row(api, tenant, ladder, django_assert_max_num_queries):
    late = _benefit(tenant, "late")
    for n in range(3):
        _event_code(tenant, f"T{n}", action="promote_tier", points=None, tier=ladder[1]["gold"])
        _event_code(tenant, f"B{n}", action="grant_benefit", points=None, benefit=late)

    with django_assert_max_num_queries(5):
        response = api.get("/api/v1/event/code")

    assert response.json()["count"] == 6


def test_event_code_routes_do_not_clash_with_the_event_routes(api, tenant):
    code = _event_code(tenant)

    assert resolve("/api/v1/event/code").func.view_class is views.EventCodeListCreateView
    assert resolve(f"/api/v1/event/code/{code.pk}").func.view_class is views.EventCodeDetailView
    assert resolve("/api/v1/event/7").func.view_class is EventDetailView
    assert _results(api.get("/api/v1/event/code"))[0]["id"] == code.pk
    assert_problem(api.get("/api/v1/event/999999"), 404, "not_found")


def test_retrieve_event_code(api, tenant):
    late = _benefit(tenant, "late")
    code = _event_code(
        tenant, "LATE1", name="Late", action="grant_benefit", points=None, benefit=late, max_redemptions=1
    )
    EventCode.objects.filter(pk=code.pk).update(redemptions=1)

    response = api.get(f"/api/v1/event/code/{code.pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        "id": code.pk,
        "code": "LATE1",
        "name": "Late",
        "action": "grant_benefit",
        "tier": None,
        "benefit": late.pk,
        "points": None,
        "max_redemptions": 1,
        "per_member_limit": 1,
        "valid_from": None,
        "valid_until": None,
        "active": True,
        "redemptions": 1,
    }


def test_put_event_code_replaces_it_and_resets_omitted_fields(api, tenant, ladder):
    code = _event_code(tenant, "BONUS500", name="Bonus", points=500, max_redemptions=10, per_member_limit=2)
    version = config_version(tenant)

    response = api.put(
        f"/api/v1/event/code/{code.pk}",
        {"code": "vip2027", "action": "promote_tier", "tier": ladder[1]["platinum"].pk},
        format="json",
    )

    assert response.status_code == 200, response.content
    got = body_without_timestamps(response)
    assert (got["code"], got["action"], got["tier"], got["points"]) == (
        "VIP2027",
        "promote_tier",
        ladder[1]["platinum"].pk,
        None,
    )
    assert (got["name"], got["max_redemptions"], got["per_member_limit"]) == ("", None, 1)
    code.refresh_from_db()
    assert (code.code, code.tier_id, code.points) == ("VIP2027", ladder[1]["platinum"].pk, None)
    entry = AuditEntry.objects.get(tenant=tenant)
    assert (entry.action, entry.before["code"], entry.after["code"]) == ("eventcode.updated", "BONUS500", "VIP2027")
    assert config_version(tenant) == version + 1


def test_put_event_code_requires_the_whole_object(api, tenant):
    code = _event_code(tenant)
    before = _state(tenant)

    errors = validation_errors(api.put(f"/api/v1/event/code/{code.pk}", {"points": 5}, format="json"))

    assert errors == {"code": ["This field is required."], "action": ["This field is required."]}
    assert _state(tenant) == before


def test_put_event_code_to_a_taken_code_is_409(api, tenant):
    _event_code(tenant, "TAKEN")
    code = _event_code(tenant, "MINE")
    before = _state(tenant)

    response = api.put(f"/api/v1/event/code/{code.pk}", _points_code(code="taken"), format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {"code": ["Event code 'TAKEN' already exists."]}
    assert _state(tenant) == before


def test_put_event_code_keeping_its_own_code_in_other_case_is_fine(api, tenant):
    code = _event_code(tenant, "BONUS500")

    response = api.put(f"/api/v1/event/code/{code.pk}", _points_code(code="bonus500", points=50), format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["code"], response.json()["points"]) == ("BONUS500", 50)


def test_patch_event_code_changes_only_the_named_fields(api, tenant):
    code = _event_code(tenant, "BONUS500", name="Bonus", points=500, max_redemptions=10)
    version = config_version(tenant)

    response = api.patch(f"/api/v1/event/code/{code.pk}", {"active": False}, format="json")

    assert response.status_code == 200, response.content
    got = response.json()
    assert (got["active"], got["name"], got["points"], got["max_redemptions"]) == (False, "Bonus", 500, 10)
    assert audit_trail(tenant) == [("eventcode.updated", "benefits.eventcode", str(code.pk))]
    assert config_version(tenant) == version + 1


def test_patch_event_code_action_without_its_target_is_422(api, tenant):
    code = _event_code(tenant)
    before = _state(tenant)

    response = api.patch(f"/api/v1/event/code/{code.pk}", {"action": "grant_benefit"}, format="json")

    assert validation_errors(response) == {
        "benefit": ["Required for grant_benefit."],
        "points": ["Not used by grant_benefit; leave it empty."],
    }
    assert _state(tenant) == before


def test_patch_event_code_action_with_its_target(api, tenant):
    late = _benefit(tenant, "late")
    code = _event_code(tenant)

    response = api.patch(
        f"/api/v1/event/code/{code.pk}",
        {"action": "grant_benefit", "benefit": late.pk, "points": None},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert (response.json()["action"], response.json()["benefit"], response.json()["points"]) == (
        "grant_benefit",
        late.pk,
        None,
    )


def test_redemptions_is_read_only_and_kept_on_update(api, tenant):
    code = _event_code(tenant, max_redemptions=5)
    EventCode.objects.filter(pk=code.pk).update(redemptions=2)

    response = api.patch(f"/api/v1/event/code/{code.pk}", {"redemptions": 0, "name": "x"}, format="json")

    assert (response.status_code, response.json()["redemptions"]) == (200, 2)
    code.refresh_from_db()
    assert code.redemptions == 2


def test_delete_event_code(api, tenant):
    code = _event_code(tenant)
    version = config_version(tenant)

    response = api.delete(f"/api/v1/event/code/{code.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not EventCode.objects.filter(pk=code.pk).exists()
    assert audit_trail(tenant) == [("eventcode.deleted", "benefits.eventcode", str(code.pk))]
    assert config_version(tenant) == version + 1


def test_delete_redeemed_event_code_is_409_in_use(api, tenant):
    code = _event_code(tenant, "VIP2027")
    EventCodeRedemption.objects.create(
        tenant=tenant, event_code=code, member=MemberFactory(tenant=tenant), at=timezone.now()
    )
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/event/code/{code.pk}"), 409, "in_use")

    assert body["detail"] == "Cannot delete VIP2027: redeemed 1 time. Archive it instead."
    assert _state(tenant) == before


# --- tenancy --------------------------------------------------------------------------------------
@pytest.mark.parametrize("resource", ["benefit", "event/code"])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_tenants_object_is_404(api, tenant, foreign, resource, method):
    before = _state(tenant)
    body = {"code": "stolen", "name": "Stolen", "action": "award_points", "points": 1, "active": False}
    pk = foreign["benefit" if resource == "benefit" else "event_code"].pk

    path = f"/api/v1/{resource}/{pk}"
    response = api.get(path) if method == "get" else getattr(api, method)(path, body, format="json")

    assert assert_problem(response, 404, "not_found")["detail"] == "Not found."
    assert _state(tenant) == before


def test_copying_another_tenants_template_is_404(api, tenant, foreign):
    before = _state(tenant)

    response = api.post(f"/api/v1/benefit/{foreign['template'].pk}/copy", {"code": "stolen"}, format="json")

    assert_problem(response, 404, "not_found")
    assert _state(tenant) == before


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_another_tenants_tier_in_the_tier_benefit_path_is_404(api, tenant, foreign, method):
    mine = _benefit(tenant, "late")
    tier = foreign["tier"]
    before = _state(tenant)

    if method == "get":
        response = api.get(f"/api/v1/tier/{tier.pk}/benefit")
    elif method == "post":
        response = api.post(f"/api/v1/tier/{tier.pk}/benefit", {"benefit": mine.pk}, format="json")
    else:
        response = api.delete(f"/api/v1/tier/{tier.pk}/benefit/{foreign['benefit'].pk}")

    assert assert_problem(response, 404, "not_found")["detail"] == "Not found."
    assert _state(tenant) == before
    assert TierBenefitMapping.objects.filter(tier=tier, benefit=foreign["benefit"]).exists()


def test_missing_ids_are_404(api, tenant):
    for path in ("benefit/999999", "event/code/999999", "tier/999999/benefit"):
        assert_problem(api.get(f"/api/v1/{path}"), 404, "not_found")
    assert_problem(api.post("/api/v1/benefit/999999/copy", {"code": "x"}, format="json"), 404, "not_found")
    assert_problem(api.delete("/api/v1/tier/999999/benefit/1"), 404, "not_found")


def test_lists_show_only_the_callers_tenant(api, tenant, foreign):
    mine_benefit, mine_code = _benefit(tenant, "late"), _event_code(tenant)

    assert [b["id"] for b in _results(api.get("/api/v1/benefit"))] == [mine_benefit.pk]
    assert [c["id"] for c in _results(api.get("/api/v1/event/code"))] == [mine_code.pk]
    assert _results(api.get("/api/v1/campaign/SPRING/benefit")) == []


def test_another_tenants_components_are_422(api, tenant, foreign):
    late = _benefit(tenant, "late")
    bundle = _benefit(tenant, "pack")
    theirs = foreign["benefit"].pk
    expected = {"components": [f'Invalid pk "{theirs}" - object does not exist.']}
    before = _state(tenant)

    created = api.post("/api/v1/benefit", _late(components=[late.pk, theirs]), format="json")
    patched = api.patch(f"/api/v1/benefit/{bundle.pk}", {"components": [theirs]}, format="json")

    assert validation_errors(created) == expected
    assert validation_errors(patched) == expected
    assert _state(tenant) == before


def test_another_tenants_benefit_in_a_mapping_is_422(api, tenant, ladder, foreign):
    theirs = foreign["benefit"].pk
    expected = {"benefit": [f'Invalid pk "{theirs}" - object does not exist.']}
    before = _state(tenant)

    tier = api.post(f"/api/v1/tier/{ladder[1]['gold'].pk}/benefit", {"benefit": theirs}, format="json")
    campaign = api.post("/api/v1/campaign/SPRING/benefit", {"benefit": theirs}, format="json")

    assert validation_errors(tier) == expected
    assert validation_errors(campaign) == expected
    assert _state(tenant) == before


@pytest.mark.parametrize("field", ["tier", "benefit"])
def test_another_tenants_ids_in_an_event_code_are_422(api, tenant, foreign, field):
    code = _event_code(tenant, "MINE")
    theirs = foreign[field].pk
    action = {"tier": "promote_tier", "benefit": "grant_benefit"}[field]
    expected = {field: [f'Invalid pk "{theirs}" - object does not exist.']}
    before = _state(tenant)

    created = api.post("/api/v1/event/code", _points_code(action=action, points=None, **{field: theirs}), format="json")
    patched = api.patch(
        f"/api/v1/event/code/{code.pk}", {"action": action, "points": None, field: theirs}, format="json"
    )

    assert validation_errors(created) == expected
    assert validation_errors(patched) == expected
    assert _state(tenant) == before


# --- auth, scopes, parsing ------------------------------------------------------------------------
def _writes(tenant: Any, ladder: Ladder) -> list[tuple[str, str, dict[str, Any], int]]:
    """Every write route once (the tier assignment twice: new, then existing), with its success status."""
    gold = ladder[1]["gold"]
    held, spare = _benefit(tenant, "held"), _benefit(tenant, "spare")
    template = _benefit(tenant, "pack", is_template=True)
    _campaign_mapping(tenant, "SPRING", held)
    code = _event_code(tenant, "HELD")
    spare_code = _event_code(tenant, "SPARE")
    return [
        ("post", "/api/v1/benefit", _late(code="new"), 201),
        ("put", f"/api/v1/benefit/{held.pk}", _late(code="held", priority=5), 200),
        ("patch", f"/api/v1/benefit/{held.pk}", {"active": False}, 200),
        ("delete", f"/api/v1/benefit/{spare.pk}", {}, 204),
        ("post", f"/api/v1/benefit/{template.pk}/copy", {"code": "pack-2027"}, 201),
        ("post", f"/api/v1/tier/{gold.pk}/benefit", {"benefit": held.pk}, 201),
        ("post", f"/api/v1/tier/{gold.pk}/benefit", {"benefit": held.pk, "inheritable": False}, 200),
        ("delete", f"/api/v1/tier/{gold.pk}/benefit/{held.pk}", {}, 204),
        ("post", "/api/v1/campaign/AUTUMN/benefit", {"benefit": held.pk, "criteria": [SPEND]}, 201),
        ("post", "/api/v1/campaign/SPRING/benefit", {"benefit": held.pk, "criteria": [SPEND]}, 200),
        ("delete", f"/api/v1/campaign/SPRING/benefit/{held.pk}", {}, 204),
        ("post", "/api/v1/event/code", _points_code(code="new"), 201),
        ("put", f"/api/v1/event/code/{code.pk}", _points_code(code="held", points=5), 200),
        ("patch", f"/api/v1/event/code/{code.pk}", {"active": False}, 200),
        ("delete", f"/api/v1/event/code/{spare_code.pk}", {}, 204),
    ]


def _read_paths(tenant: Any, ladder: Ladder) -> list[str]:
    benefit, code = _benefit(tenant, "read"), _event_code(tenant, "READ")
    return [
        "/api/v1/benefit",
        f"/api/v1/benefit/{benefit.pk}",
        f"/api/v1/tier/{ladder[1]['gold'].pk}/benefit",
        "/api/v1/campaign/SPRING/benefit",
        "/api/v1/event/code",
        f"/api/v1/event/code/{code.pk}",
    ]


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_WRITE])
def test_writes_need_the_admin_scope_and_store_nothing(api_client_for, tenant, ladder, scope):
    client = api_client_for(tenant, scope=scope)
    writes = _writes(tenant, ladder)
    before = _state(tenant)

    for method, path, body, _ in writes:
        assert_problem(getattr(client, method)(path, body, format="json"), 403, "insufficient_scope")

    assert _state(tenant) == before


def test_every_write_succeeds_with_the_admin_scope_with_one_audit_entry_and_version_bump_each(
    api_client_for, tenant, ladder
):
    client = api_client_for(tenant, scope=SCOPE_ADMIN)

    for method, path, body, expected in _writes(tenant, ladder):
        version, entries = config_version(tenant), AuditEntry.objects.filter(tenant=tenant).count()
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == expected, (method, path, response.content)
        assert AuditEntry.objects.filter(tenant=tenant).count() == entries + 1, (method, path)
        assert config_version(tenant) == version + 1, (method, path)


def test_reads_need_only_the_read_scope(api_client_for, tenant, ladder):
    client = api_client_for(tenant, scope=SCOPE_READ)

    for path in _read_paths(tenant, ladder):
        response = client.get(path)
        assert response.status_code == 200, (path, response.content)


def test_reads_without_the_read_scope_are_403(api_client_for, tenant, ladder):
    client = api_client_for(tenant, scope="privilege:audit")

    for path in _read_paths(tenant, ladder):
        assert_problem(client.get(path), 403, "insufficient_scope")


def test_no_token_is_401_and_stores_nothing(tenant, ladder):
    client = APIClient()
    reads, writes = _read_paths(tenant, ladder), _writes(tenant, ladder)
    before = _state(tenant)

    for path in reads:
        response = client.get(path)
        assert_problem(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == 'Bearer realm="privilege"'
    for method, path, body, _ in writes:
        assert_problem(getattr(client, method)(path, body, format="json"), 401, "not_authenticated")

    assert _state(tenant) == before


def test_malformed_json_is_400_and_stores_nothing(api, tenant, ladder):
    benefit, template, code = _benefit(tenant), _benefit(tenant, "pack", is_template=True), _event_code(tenant)
    before = _state(tenant)

    for method, path in [
        ("POST", "/api/v1/benefit"),
        ("PUT", f"/api/v1/benefit/{benefit.pk}"),
        ("PATCH", f"/api/v1/benefit/{benefit.pk}"),
        ("POST", f"/api/v1/benefit/{template.pk}/copy"),
        ("POST", f"/api/v1/tier/{ladder[1]['gold'].pk}/benefit"),
        ("POST", "/api/v1/campaign/SPRING/benefit"),
        ("POST", "/api/v1/event/code"),
        ("PUT", f"/api/v1/event/code/{code.pk}"),
        ("PATCH", f"/api/v1/event/code/{code.pk}"),
    ]:
        response = api.generic(method, path, '{"code": "x",', content_type="application/json")
        assert_problem(response, 400, "malformed_json")

    assert _state(tenant) == before


def test_a_json_array_body_is_422_not_500(api, tenant, ladder):
    template = _benefit(tenant, "pack", is_template=True)
    before = _state(tenant)

    for path in (
        "/api/v1/benefit",
        f"/api/v1/benefit/{template.pk}/copy",
        f"/api/v1/tier/{ladder[1]['gold'].pk}/benefit",
        "/api/v1/campaign/SPRING/benefit",
        "/api/v1/event/code",
    ):
        response = api.generic("POST", path, json.dumps([{"code": "x"}]), content_type="application/json")
        assert list(validation_errors(response)) == ["non_field_errors"], path

    assert _state(tenant) == before

"""The configuration API of tier types, tiers and promotion rules (/api/v1/tier/type, /tier, /promotion/rule).

Every write goes through ``tiers.services``: one audit entry and one ``config_version`` bump per saved
row; a refused write stores nothing, audits nothing and leaves the version alone.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from config.api import SCOPE_READ, SCOPE_WRITE
from tests.factories import MemberFactory, PromotionRuleFactory, TierFactory, TierTypeFactory, hotel_ladder
from tests.helpers import assert_problem, audit_trail, body_without_timestamps, config_version, validation_errors
from tiers.assignments import change_member_tier
from tiers.models import MemberTierChange, PromotionRule, Tier, TierType

pytestmark = pytest.mark.django_db

HOTEL_TYPE = {
    "code": "hotel",
    "name": "Hotel status",
    "mode": "hybrid",
    "qualification": "calendar_year",
    "window_days": None,
    "validity": "end_of_next_period",
    "validity_days": None,
    "grace_days": 90,
    "demotion_step": "to_qualified",
    "product": None,
    "partner": None,
    "priority": 0,
    "active": True,
}
GOLD_TIER = {
    "code": "gold",
    "name": "Gold",
    "rank": 3,
    "is_default": False,
    "climbable": True,
    "immutable": False,
    "point_multiplier": "1.80",
    "available_from": None,
    "available_until": None,
}
NIGHTS = {"metric": "quantity:nights", "operator": "gte", "value": 30}
STAYS = {"metric": "quantity:stays", "operator": "gte", "value": 15, "window_days": None}


# --- helpers --------------------------------------------------------------------------------------
def _state(tenant: Any) -> tuple[Any, ...]:
    """Everything a refused write must leave alone: rows, audit trail, config version."""
    tenant.refresh_from_db()
    return (
        tenant.config_version,
        AuditEntry.objects.count(),
        list(TierType.objects.order_by("pk").values()),
        list(Tier.objects.order_by("pk").values()),
        list(PromotionRule.objects.order_by("pk").values()),
    )


@pytest.fixture
def foreign(other_tenant: Any) -> tuple[TierType, dict[str, Tier], PromotionRule]:
    return hotel_ladder(other_tenant)


# --- tier types -----------------------------------------------------------------------------------
def test_create_tier_type_returns_201_with_the_stored_object_audited_once(api, tenant):
    version = config_version(tenant)

    response = api.post("/api/v1/tier/type", HOTEL_TYPE, format="json")

    assert response.status_code == 201, response.content
    tier_type = TierType.objects.get(tenant=tenant, code="hotel")
    assert body_without_timestamps(response) == {"id": tier_type.pk, **HOTEL_TYPE}
    assert tier_type.grace_days == 90
    assert audit_trail(tenant) == [("tiertype.created", "tiers.tiertype", str(tier_type.pk))]
    assert AuditEntry.objects.get().actor == "service:svc-test"
    assert config_version(tenant) == version + 1


def test_create_tier_type_with_only_code_and_name_takes_the_defaults(api, tenant):
    response = api.post("/api/v1/tier/type", {"code": "air", "name": "Air"}, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": TierType.objects.get(code="air").pk,
        "code": "air",
        "name": "Air",
        "mode": "hybrid",
        "qualification": "calendar_year",
        "window_days": None,
        "validity": "end_of_next_period",
        "validity_days": None,
        "grace_days": 0,
        "demotion_step": "to_qualified",
        "product": None,
        "partner": None,
        "priority": 0,
        "active": True,
    }


def test_create_rolling_tier_type_with_fixed_days_validity(api, tenant):
    body = {
        **HOTEL_TYPE,
        "qualification": "rolling",
        "window_days": 365,
        "validity": "fixed_days",
        "validity_days": 400,
    }

    response = api.post("/api/v1/tier/type", body, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response)["window_days"] == 365
    assert body_without_timestamps(response)["validity_days"] == 400


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param(
            {"qualification": "rolling", "validity": "while_qualified"}, "window_days", id="rolling-no-window"
        ),
        pytest.param({"validity": "fixed_days"}, "validity_days", id="fixed-days-no-days"),
        pytest.param({"window_days": 30}, "window_days", id="window-without-rolling"),
        pytest.param(
            {"qualification": "lifetime", "validity": "end_of_period"}, "validity", id="lifetime-end-of-period"
        ),
        pytest.param({"qualification": "calendar_year", "validity": "while_qualified"}, "validity", id="year-while-q"),
        pytest.param({"mode": "sometimes"}, "mode", id="unknown-mode"),
        pytest.param({"code": "not a slug!"}, "code", id="bad-code"),
        pytest.param({"name": ""}, "name", id="blank-name"),
        pytest.param({"grace_days": -1}, "grace_days", id="negative-grace"),
    ],
)
def test_invalid_tier_type_is_422_naming_the_field_and_stores_nothing(api, tenant, changes, field):
    before = _state(tenant)

    response = api.post("/api/v1/tier/type", {**HOTEL_TYPE, **changes}, format="json")

    errors = validation_errors(response)
    assert field in errors, errors
    assert _state(tenant) == before


def test_missing_required_tier_type_fields_are_named(api, tenant):
    before = _state(tenant)

    errors = validation_errors(api.post("/api/v1/tier/type", {"mode": "fixed"}, format="json"))

    assert errors == {"code": ["This field is required."], "name": ["This field is required."]}
    assert _state(tenant) == before


def test_duplicate_tier_type_code_is_409_and_stores_nothing(api, tenant, ladder):
    before = _state(tenant)

    body = assert_problem(
        api.post("/api/v1/tier/type", {**HOTEL_TYPE, "name": "Again"}, format="json"), 409, "duplicate_code"
    )

    assert body["errors"] == {"code": ["Tier type 'hotel' already exists."]}
    assert _state(tenant) == before
    assert TierType.objects.filter(tenant=tenant, code="hotel").count() == 1


def test_same_tier_type_code_in_another_tenant_is_fine(api, tenant, foreign):
    response = api.post("/api/v1/tier/type", HOTEL_TYPE, format="json")

    assert response.status_code == 201, response.content
    assert TierType.objects.filter(code="hotel").count() == 2


def test_list_tier_types_paginates_in_priority_then_code_order(api, tenant, other_tenant):
    TierTypeFactory(tenant=tenant, code="b-type", priority=0)
    TierTypeFactory(tenant=tenant, code="a-type", priority=0)
    TierTypeFactory(tenant=tenant, code="z-type", priority=10)
    TierTypeFactory(tenant=other_tenant, code="theirs")

    first = api.get("/api/v1/tier/type?page_size=2").json()
    second = api.get("/api/v1/tier/type?page_size=2&page=2").json()

    assert first["count"] == 3
    assert [t["code"] for t in first["results"]] == ["z-type", "a-type"]
    assert first["previous"] is None
    assert first["next"].endswith("/api/v1/tier/type?page=2&page_size=2")
    assert [t["code"] for t in second["results"]] == ["b-type"]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        pytest.param("code=air", ["air"], id="code"),
        pytest.param("active=false", ["old"], id="inactive"),
        pytest.param("active=true", ["air", "hotel"], id="active"),
        pytest.param("mode=fixed", ["air"], id="mode"),
        pytest.param("mode=dynamic", [], id="mode-none"),
    ],
)
def test_filter_tier_types(api, tenant, query, codes):
    TierTypeFactory(tenant=tenant, code="hotel", mode="hybrid")
    TierTypeFactory(tenant=tenant, code="air", mode="fixed")
    TierTypeFactory(tenant=tenant, code="old", mode="hybrid", active=False)

    response = api.get(f"/api/v1/tier/type?{query}")

    assert response.status_code == 200
    assert sorted(t["code"] for t in response.json()["results"]) == codes


def test_filter_tier_types_by_unknown_mode_is_422(api, tenant):
    assert "mode" in validation_errors(api.get("/api/v1/tier/type?mode=sometimes"))


def test_retrieve_tier_type(api, tenant, ladder):
    tier_type = ladder[0]

    response = api.get(f"/api/v1/tier/type/{tier_type.pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        **HOTEL_TYPE,
        "id": tier_type.pk,
        "name": "Hotel status",
    }


def test_put_tier_type_replaces_the_object_and_resets_omitted_fields_to_their_defaults(api, tenant, ladder):
    tier_type = ladder[0]
    version = config_version(tenant)

    response = api.put(
        f"/api/v1/tier/type/{tier_type.pk}", {"code": "hotel", "name": "Hotels", "priority": 5}, format="json"
    )

    assert response.status_code == 200, response.content
    assert body_without_timestamps(response) == {
        **HOTEL_TYPE,
        "id": tier_type.pk,
        "name": "Hotels",
        "priority": 5,
        "grace_days": 0,
    }
    tier_type.refresh_from_db()
    assert (tier_type.name, tier_type.priority, tier_type.grace_days) == ("Hotels", 5, 0)
    entry = AuditEntry.objects.get(tenant=tenant)
    assert (entry.action, entry.target_id) == ("tiertype.updated", str(tier_type.pk))
    assert (entry.before["name"], entry.after["name"]) == ("Hotel status", "Hotels")
    assert config_version(tenant) == version + 1


def test_put_tier_type_requires_the_whole_object(api, tenant, ladder):
    before = _state(tenant)

    errors = validation_errors(api.put(f"/api/v1/tier/type/{ladder[0].pk}", {"name": "Hotels"}, format="json"))

    assert errors == {"code": ["This field is required."]}
    assert _state(tenant) == before


def test_patch_tier_type_changes_only_the_named_fields(api, tenant, ladder):
    tier_type = ladder[0]
    version = config_version(tenant)

    response = api.patch(f"/api/v1/tier/type/{tier_type.pk}", {"name": "Hotels"}, format="json")

    assert response.status_code == 200, response.content
    assert body_without_timestamps(response) == {**HOTEL_TYPE, "id": tier_type.pk, "name": "Hotels"}
    assert audit_trail(tenant) == [("tiertype.updated", "tiers.tiertype", str(tier_type.pk))]
    assert config_version(tenant) == version + 1


def test_patch_tier_type_to_rolling_without_window_is_422(api, tenant, ladder):
    before = _state(tenant)

    response = api.patch(
        f"/api/v1/tier/type/{ladder[0].pk}",
        {"qualification": "rolling", "validity": "fixed_days", "validity_days": 30},
        format="json",
    )

    assert validation_errors(response) == {"window_days": ["Required for rolling qualification."]}
    assert _state(tenant) == before


def test_activating_a_tier_type_whose_tiers_have_no_default_is_422(api, tenant):
    tier_type, tiers, _ = hotel_ladder(tenant, active=False)
    Tier.objects.filter(pk=tiers["member"].pk).update(is_default=False)
    before = _state(tenant)

    response = api.patch(f"/api/v1/tier/type/{tier_type.pk}", {"active": True}, format="json")

    assert list(validation_errors(response)) == ["active"]
    assert _state(tenant) == before


def test_delete_tier_type_removes_it_and_its_tiers(api, tenant):
    tier_type = TierTypeFactory(tenant=tenant, code="spare")
    TierFactory(tier_type=tier_type, rank=1, is_default=True)
    TierFactory(tier_type=tier_type, rank=2)
    version = config_version(tenant)

    response = api.delete(f"/api/v1/tier/type/{tier_type.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not TierType.objects.filter(pk=tier_type.pk).exists()
    assert not Tier.objects.filter(tier_type_id=tier_type.pk).exists()
    assert audit_trail(tenant) == [("tiertype.deleted", "tiers.tiertype", str(tier_type.pk))]
    assert config_version(tenant) == version + 1


def test_delete_tier_type_referenced_by_rules_is_409_in_use_naming_them(api, tenant, ladder):
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/tier/type/{ladder[0].pk}"), 409, "in_use")

    assert body["detail"] == (
        "Cannot delete Hotel status: referenced by 1 promotion rule (hotel-gold-by-nights). Archive it instead."
    )
    assert _state(tenant) == before


def test_delete_tier_type_held_by_a_member_is_409_in_use(api, tenant):
    tier_type = TierTypeFactory(tenant=tenant, code="spare", name="Spare")
    tier = TierFactory(tier_type=tier_type, rank=1, is_default=True)
    change_member_tier(tenant=tenant, member=MemberFactory(tenant=tenant), tier=tier, reason="test", actor="test")
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/tier/type/{tier_type.pk}"), 409, "in_use")

    assert "held by 1 member" in body["detail"]
    assert "named in 1 tier change of member history" in body["detail"]
    assert _state(tenant) == before


# --- tiers ----------------------------------------------------------------------------------------
def test_create_tier_under_its_type_returns_201_audited_once(api, tenant, ladder):
    tier_type = ladder[0]
    PromotionRule.objects.all().delete()
    Tier.objects.filter(code="gold").delete()
    version = config_version(tenant)

    response = api.post(
        f"/api/v1/tier/type/{tier_type.pk}/tier", {**GOLD_TIER, "description": "Gold card"}, format="json"
    )

    assert response.status_code == 201, response.content
    tier = Tier.objects.get(tier_type=tier_type, code="gold")
    assert body_without_timestamps(response) == {
        "id": tier.pk,
        "tier_type": tier_type.pk,
        **GOLD_TIER,
        "description": "Gold card",
    }
    assert str(tier.point_multiplier) == "1.80"
    assert audit_trail(tenant) == [("tier.created", "tiers.tier", str(tier.pk))]
    assert config_version(tenant) == version + 1


def test_first_tier_of_an_empty_active_type_becomes_default_and_time_bound_fields_round_trip(api, tenant):
    tier_type = TierTypeFactory(tenant=tenant, code="promo")
    body = {
        "code": "summer",
        "name": "Summer",
        "rank": 1,
        "is_default": True,
        "point_multiplier": "2",
        "available_from": "2026-06-01T00:00:00Z",
        "available_until": "2026-09-01T00:00:00+07:00",
    }

    response = api.post(f"/api/v1/tier/type/{tier_type.pk}/tier", body, format="json")

    assert response.status_code == 201, response.content
    assert body_without_timestamps(response) == {
        "id": Tier.objects.get(code="summer").pk,
        "tier_type": tier_type.pk,
        "code": "summer",
        "name": "Summer",
        "rank": 1,
        "is_default": True,
        "climbable": True,
        "immutable": False,
        "point_multiplier": "2.00",
        "available_from": "2026-06-01T00:00:00Z",
        "available_until": "2026-08-31T17:00:00Z",
        "description": "",
    }


def test_first_tier_of_an_active_type_must_be_its_default(api, tenant):
    tier_type = TierTypeFactory(tenant=tenant, code="promo")
    before = _state(tenant)

    response = api.post(f"/api/v1/tier/type/{tier_type.pk}/tier", {"code": "a", "name": "A", "rank": 1}, format="json")

    assert validation_errors(response) == {"is_default": ["The first tier of an active tier type must be its default."]}
    assert _state(tenant) == before


def test_a_new_default_tier_moves_the_default(api, tenant, ladder):
    tier_type, tiers, _ = ladder

    response = api.post(
        f"/api/v1/tier/type/{tier_type.pk}/tier",
        {"code": "base", "name": "Base", "rank": 9, "is_default": True},
        format="json",
    )

    assert response.status_code == 201, response.content
    new = Tier.objects.get(code="base")
    tiers["member"].refresh_from_db()
    assert new.is_default is True
    assert tiers["member"].is_default is False
    assert list(Tier.objects.filter(tier_type=tier_type, is_default=True)) == [new]
    # Two rows changed: the old default (with the reason) and the new tier.
    assert audit_trail(tenant) == [
        ("tier.updated", "tiers.tier", str(tiers["member"].pk)),
        ("tier.created", "tiers.tier", str(new.pk)),
    ]
    assert AuditEntry.objects.get(action="tier.updated").reason == "default moved to base"


def test_patching_a_tier_to_default_moves_the_default(api, tenant, ladder):
    _, tiers, _ = ladder

    response = api.patch(f"/api/v1/tier/{tiers['silver'].pk}", {"is_default": True}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["is_default"] is True
    assert set(Tier.objects.filter(is_default=True).values_list("code", flat=True)) == {"silver"}


def test_unsetting_the_default_of_an_active_type_is_422(api, tenant, ladder):
    before = _state(tenant)

    response = api.patch(f"/api/v1/tier/{ladder[1]['member'].pk}", {"is_default": False}, format="json")

    assert validation_errors(response) == {
        "is_default": ["An active tier type needs a default tier: make another tier the default instead."]
    }
    assert _state(tenant) == before


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param({"rank": 2}, {"rank": ["Rank 2 is already used in hotel."]}, id="rank-taken"),
        pytest.param({"rank": 0}, {"rank": ["Ensure this value is greater than or equal to 1."]}, id="rank-zero"),
        pytest.param(
            {"point_multiplier": "-0.50"},
            {"point_multiplier": ["Ensure this value is greater than or equal to 0."]},
            id="negative-multiplier",
        ),
        pytest.param(
            {"point_multiplier": "12345.00"},
            {"point_multiplier": ["Ensure that there are no more than 6 digits in total."]},
            id="multiplier-too-big",
        ),
        pytest.param(
            {"available_from": "2026-09-01T00:00:00Z", "available_until": "2026-06-01T00:00:00Z"},
            {"available_until": ["Must be after available_from."]},
            id="window-inverted",
        ),
        pytest.param(
            {"available_from": "2026-09-01T00:00:00Z", "available_until": "2026-09-01T00:00:00Z"},
            {"available_until": ["Must be after available_from."]},
            id="window-empty",
        ),
        pytest.param({"code": "gold medal"}, None, id="bad-code"),
        pytest.param({"name": None}, {"name": ["This field may not be null."]}, id="null-name"),
    ],
)
def test_invalid_tier_is_422_naming_the_field_and_stores_nothing(api, tenant, ladder, changes, errors):
    before = _state(tenant)
    body = {**GOLD_TIER, "code": "diamond", "rank": 5, **changes}

    got = validation_errors(api.post(f"/api/v1/tier/type/{ladder[0].pk}/tier", body, format="json"))

    if errors is None:
        assert list(got) == list(changes)
    else:
        assert got == errors
    assert _state(tenant) == before


def test_duplicate_tier_code_in_the_same_type_is_409(api, tenant, ladder):
    before = _state(tenant)

    response = api.post(f"/api/v1/tier/type/{ladder[0].pk}/tier", {**GOLD_TIER, "rank": 7}, format="json")

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {"code": ["Tier 'gold' already exists."]}
    assert _state(tenant) == before


def test_same_tier_code_in_another_type_is_fine(api, tenant, ladder):
    other = TierTypeFactory(tenant=tenant, code="air")

    response = api.post(
        f"/api/v1/tier/type/{other.pk}/tier", {**GOLD_TIER, "rank": 1, "is_default": True}, format="json"
    )

    assert response.status_code == 201, response.content
    assert Tier.objects.filter(tenant=tenant, code="gold").count() == 2


def test_list_tiers_of_a_type_in_rank_order(api, tenant, ladder):
    tier_type = ladder[0]
    hotel_ladder(tenant, code="air")

    response = api.get(f"/api/v1/tier/type/{tier_type.pk}/tier")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert [(t["code"], t["rank"], t["tier_type"]) for t in body["results"]] == [
        ("member", 1, tier_type.pk),
        ("silver", 2, tier_type.pk),
        ("gold", 3, tier_type.pk),
        ("platinum", 4, tier_type.pk),
    ]
    assert api.get(f"/api/v1/tier/type/{tier_type.pk}/tier?code=gold").json()["count"] == 1


def test_list_all_tiers_with_filters(api, tenant, ladder, foreign):
    hotel, air = ladder[0], hotel_ladder(tenant, code="air")[0]

    everything = api.get("/api/v1/tier?page_size=100").json()
    by_type = api.get(f"/api/v1/tier?tier_type={air.pk}").json()
    by_code = api.get("/api/v1/tier?code=gold").json()
    both = api.get(f"/api/v1/tier?tier_type={hotel.pk}&code=gold").json()
    foreign_type = api.get(f"/api/v1/tier?tier_type={foreign[0].pk}").json()

    assert everything["count"] == 8
    assert {t["tier_type"] for t in everything["results"]} == {hotel.pk, air.pk}
    assert {t["tier_type"] for t in by_type["results"]} == {air.pk}
    assert by_type["count"] == 4
    assert [(t["code"], t["tier_type"]) for t in by_code["results"]] == [("gold", hotel.pk), ("gold", air.pk)]
    assert [t["id"] for t in both["results"]] == [ladder[1]["gold"].pk]
    assert foreign_type["count"] == 0


def test_retrieve_tier(api, tenant, ladder):
    tier_type, tiers, _ = ladder

    response = api.get(f"/api/v1/tier/{tiers['gold'].pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        "id": tiers["gold"].pk,
        "tier_type": tier_type.pk,
        **GOLD_TIER,
        "point_multiplier": "1.50",
        "description": "",
    }


def test_put_tier_replaces_it_but_never_moves_it_to_another_type(api, tenant, ladder):
    tier_type, tiers, _ = ladder
    air = TierTypeFactory(tenant=tenant, code="air")
    version = config_version(tenant)

    response = api.put(
        f"/api/v1/tier/{tiers['gold'].pk}",
        {"tier_type": air.pk, "code": "gold", "name": "Gold+", "rank": 6, "point_multiplier": "1.75"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert body_without_timestamps(response) == {
        "id": tiers["gold"].pk,
        "tier_type": tier_type.pk,
        **GOLD_TIER,
        "name": "Gold+",
        "rank": 6,
        "point_multiplier": "1.75",
        "description": "",
    }
    tiers["gold"].refresh_from_db()
    assert (tiers["gold"].tier_type_id, tiers["gold"].rank) == (tier_type.pk, 6)
    assert audit_trail(tenant) == [("tier.updated", "tiers.tier", str(tiers["gold"].pk))]
    assert config_version(tenant) == version + 1


def test_put_tier_requires_the_whole_object(api, tenant, ladder):
    before = _state(tenant)

    errors = validation_errors(api.put(f"/api/v1/tier/{ladder[1]['gold'].pk}", {"name": "Gold+"}, format="json"))

    assert errors == {"code": ["This field is required."], "rank": ["This field is required."]}
    assert _state(tenant) == before


def test_patch_tier(api, tenant, ladder):
    gold = ladder[1]["gold"]

    response = api.patch(f"/api/v1/tier/{gold.pk}", {"point_multiplier": "1.8", "immutable": True}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["point_multiplier"], response.json()["immutable"], response.json()["name"]) == (
        "1.80",
        True,
        "Gold",
    )
    assert audit_trail(tenant) == [("tier.updated", "tiers.tier", str(gold.pk))]


def test_patch_tier_into_a_taken_rank_is_422(api, tenant, ladder):
    before = _state(tenant)

    response = api.patch(f"/api/v1/tier/{ladder[1]['gold'].pk}", {"rank": 4}, format="json")

    assert validation_errors(response) == {"rank": ["Rank 4 is already used in hotel."]}
    assert _state(tenant) == before


def test_delete_tier(api, tenant, ladder):
    platinum = ladder[1]["platinum"]
    version = config_version(tenant)

    response = api.delete(f"/api/v1/tier/{platinum.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Tier.objects.filter(pk=platinum.pk).exists()
    assert audit_trail(tenant) == [("tier.deleted", "tiers.tier", str(platinum.pk))]
    assert config_version(tenant) == version + 1


def test_delete_tier_held_by_a_member_is_409_in_use(api, tenant, ladder):
    silver = ladder[1]["silver"]
    change_member_tier(tenant=tenant, member=MemberFactory(tenant=tenant), tier=silver, reason="VIP", actor="test")
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/tier/{silver.pk}"), 409, "in_use")

    assert body["detail"] == (
        "Cannot delete Silver (hotel #2): held by 1 member; named in 1 tier change of member history. "
        "Archive it instead."
    )
    assert _state(tenant) == before


def test_delete_tier_targeted_by_a_rule_is_409_in_use(api, tenant, ladder):
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/tier/{ladder[1]['gold'].pk}"), 409, "in_use")

    assert body["detail"] == (
        "Cannot delete Gold (hotel #3): target of promotion rule(s) hotel-gold-by-nights. Archive it instead."
    )
    assert _state(tenant) == before


def test_delete_default_tier_of_an_active_type_is_409(api, tenant, ladder):
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/tier/{ladder[1]['member'].pk}"), 409, "in_use")

    assert "it is the default tier of an active tier type" in body["detail"]
    assert _state(tenant) == before


# --- promotion rules ------------------------------------------------------------------------------
def _rule_body(tier_type: TierType, target: Tier | None, /, **changes: Any) -> dict[str, Any]:
    return {
        "code": "gold-by-nights",
        "tier_type": tier_type.pk,
        "direction": "promotion",
        "target_tier": target.pk if target else None,
        "combinator": "any",
        "priority": 10,
        "status": "active",
        "effective_from": None,
        "effective_until": None,
        "criteria": [NIGHTS, STAYS],
        **changes,
    }


def test_create_promotion_rule_returns_201_with_normalised_criteria_and_summary(api, tenant, ladder):
    tier_type, tiers, _ = ladder
    version = config_version(tenant)

    response = api.post("/api/v1/promotion/rule", _rule_body(tier_type, tiers["gold"]), format="json")

    assert response.status_code == 201, response.content
    rule = PromotionRule.objects.get(code="gold-by-nights")
    assert body_without_timestamps(response) == {
        "id": rule.pk,
        "code": "gold-by-nights",
        "name": "",
        "tier_type": tier_type.pk,
        "direction": "promotion",
        "target_tier": tiers["gold"].pk,
        "combinator": "any",
        "criteria": [
            {"metric": "quantity:nights", "operator": "gte", "value": 30, "window_days": None},
            {"metric": "quantity:stays", "operator": "gte", "value": 15, "window_days": None},
        ],
        "priority": 10,
        "status": "active",
        "effective_from": None,
        "effective_until": None,
        "description": "",
        "summary": "Gold if nights ≥ 30 OR stays ≥ 15 in calendar year",
    }
    assert rule.criteria == response.json()["criteria"]
    assert audit_trail(tenant) == [("promotionrule.created", "tiers.promotionrule", str(rule.pk))]
    assert config_version(tenant) == version + 1


def test_create_demotion_rule_without_target_with_defaults(api, tenant, ladder):
    body = {
        "code": "idle",
        "tier_type": ladder[0].pk,
        "direction": "demotion",
        "criteria": [{"metric": "days_inactive", "operator": "gte", "value": 365}],
    }

    response = api.post("/api/v1/promotion/rule", body, format="json")

    assert response.status_code == 201, response.content
    got = response.json()
    assert (got["target_tier"], got["combinator"], got["status"], got["priority"]) == (None, "any", "draft", 0)
    assert got["summary"] == "Down one tier if days inactive ≥ 365 in calendar year"


def test_decimal_and_attribute_criteria_are_normalised(api, tenant, ladder):
    criteria = [
        {"metric": "spend", "operator": "gte", "value": "2500.50", "window_days": 365},
        {"metric": "attribute:country", "operator": "in", "value": ["TH", "SG"]},
    ]

    response = api.post(
        "/api/v1/promotion/rule",
        _rule_body(ladder[0], ladder[1]["gold"], combinator="all", criteria=criteria),
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["criteria"] == [
        {"metric": "spend", "operator": "gte", "value": "2500.5", "window_days": 365},
        {"metric": "attribute:country", "operator": "in", "value": ["TH", "SG"], "window_days": None},
    ]
    assert response.json()["summary"] == "Gold if spend ≥ 2500.5 in 365 days AND country in TH, SG in calendar year"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param(
            {"criteria": [{"metric": "stars", "operator": "gte", "value": 1}]},
            {
                "criteria": [
                    "Criterion 1: metric 'stars' is not one of spend, transactions, points, days_inactive, "
                    "tenure_days, quantity:<name>, "
                    "events:<transaction|mission|campaign|promo|engagement|refund|custom>, attribute:<name>."
                ]
            },
            id="unknown-metric",
        ),
        pytest.param(
            {"criteria": [NIGHTS, {"metric": "spend", "operator": ">=", "value": 1}]},
            {"criteria": ["Criterion 2: operator '>=' is not one of gte, gt, lte, lt, eq, ne, in."]},
            id="bad-operator",
        ),
        pytest.param({"criteria": []}, {"criteria": ["At least one criterion is required."]}, id="no-criteria"),
        pytest.param(
            {"criteria": [{"metric": "spend", "operator": "gte", "value": "lots"}]},
            {"criteria": ["Criterion 1: value 'lots' for spend gte must be a number."]},
            id="non-numeric-value",
        ),
        pytest.param(
            {"criteria": [{"metric": "tenure_days", "operator": "gte", "value": 1, "window_days": 30}]},
            {"criteria": ["Criterion 1: window_days does not apply to tenure_days (it has no window)."]},
            id="window-on-unwindowed",
        ),
        pytest.param({"target_tier": None}, {"target_tier": ["A promotion rule needs a target tier."]}, id="no-target"),
        pytest.param(
            {"effective_from": "2026-06-01T00:00:00Z", "effective_until": "2026-01-01T00:00:00Z"},
            {"effective_until": ["Must be after effective_from."]},
            id="effective-window-inverted",
        ),
        pytest.param({"direction": "sideways"}, {"direction": ['"sideways" is not a valid choice.']}, id="direction"),
        pytest.param({"status": "live"}, {"status": ['"live" is not a valid choice.']}, id="status"),
        pytest.param({"combinator": "xor"}, {"combinator": ['"xor" is not a valid choice.']}, id="combinator"),
        pytest.param({"tier_type": 999999}, {"tier_type": ['Invalid pk "999999" - object does not exist.']}, id="type"),
    ],
)
def test_invalid_rule_is_422_naming_the_field_and_stores_nothing(api, tenant, ladder, changes, errors):
    before = _state(tenant)

    response = api.post("/api/v1/promotion/rule", _rule_body(ladder[0], ladder[1]["gold"], **changes), format="json")

    assert validation_errors(response) == errors
    assert _state(tenant) == before


def test_rule_targeting_a_tier_of_another_type_is_422(api, tenant, ladder):
    air_gold = hotel_ladder(tenant, code="air")[1]["gold"]
    before = _state(tenant)

    response = api.post("/api/v1/promotion/rule", _rule_body(ladder[0], air_gold), format="json")

    assert validation_errors(response) == {"target_tier": ["The target tier belongs to another tier type."]}
    assert _state(tenant) == before


def test_duplicate_rule_code_is_409(api, tenant, ladder):
    before = _state(tenant)

    response = api.post(
        "/api/v1/promotion/rule", _rule_body(ladder[0], ladder[1]["gold"], code="hotel-gold-by-nights"), format="json"
    )

    assert assert_problem(response, 409, "duplicate_code")["errors"] == {
        "code": ["Promotion rule 'hotel-gold-by-nights' already exists."]
    }
    assert _state(tenant) == before


def test_list_and_filter_rules(api, tenant, ladder, foreign):
    hotel = ladder[0]
    air = hotel_ladder(tenant, code="air")[0]
    PromotionRuleFactory(
        tier_type=hotel,
        target_tier=None,
        code="idle",
        direction="demotion",
        status="draft",
        criteria=[{"metric": "days_inactive", "operator": "gte", "value": 365, "window_days": None}],
    )

    def codes(query: str) -> list[str]:
        response = api.get(f"/api/v1/promotion/rule{query}")
        assert response.status_code == 200, response.content
        return sorted(r["code"] for r in response.json()["results"])

    assert codes("") == ["air-gold-by-nights", "hotel-gold-by-nights", "idle"]
    assert codes("?status=draft") == ["idle"]
    assert codes("?status=active") == ["air-gold-by-nights", "hotel-gold-by-nights"]
    assert codes("?direction=demotion") == ["idle"]
    assert codes(f"?tier_type={air.pk}") == ["air-gold-by-nights"]
    assert codes(f"?tier_type={hotel.pk}&direction=promotion") == ["hotel-gold-by-nights"]
    assert codes("?code=idle") == ["idle"]
    assert codes(f"?tier_type={foreign[0].pk}") == []
    listed = api.get("/api/v1/promotion/rule?code=hotel-gold-by-nights").json()["results"][0]
    assert listed["summary"] == "Gold if nights ≥ 25 OR stays ≥ 15 in calendar year"


def test_list_rules_does_not_query_per_row(api, tenant, ladder, django_assert_max_num_queries):
    for n in range(5):
        PromotionRuleFactory(tier_type=ladder[0], target_tier=ladder[1]["silver"], code=f"r{n}")

    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/promotion/rule")

    assert response.json()["count"] == 6


def test_retrieve_rule(api, tenant, ladder):
    tier_type, tiers, rule = ladder

    response = api.get(f"/api/v1/promotion/rule/{rule.pk}")

    assert response.status_code == 200
    assert body_without_timestamps(response) == {
        "id": rule.pk,
        "code": "hotel-gold-by-nights",
        "name": "",
        "tier_type": tier_type.pk,
        "direction": "promotion",
        "target_tier": tiers["gold"].pk,
        "combinator": "any",
        "criteria": [
            {"metric": "quantity:nights", "operator": "gte", "value": 25, "window_days": None},
            {"metric": "quantity:stays", "operator": "gte", "value": 15, "window_days": None},
        ],
        "priority": 0,
        "status": "active",
        "effective_from": None,
        "effective_until": None,
        "description": "",
        "summary": "Gold if nights ≥ 25 OR stays ≥ 15 in calendar year",
    }


def test_put_rule_replaces_it(api, tenant, ladder):
    tier_type, tiers, rule = ladder
    version = config_version(tenant)
    body = _rule_body(
        tier_type,
        tiers["platinum"],
        code="hotel-gold-by-nights",
        criteria=[NIGHTS],
        status="draft",
        effective_from="2026-01-01T00:00:00Z",
        effective_until="2027-01-01T00:00:00Z",
    )

    response = api.put(f"/api/v1/promotion/rule/{rule.pk}", body, format="json")

    assert response.status_code == 200, response.content
    got = body_without_timestamps(response)
    assert got["target_tier"] == tiers["platinum"].pk
    assert got["criteria"] == [{**NIGHTS, "window_days": None}]
    assert (got["status"], got["priority"]) == ("draft", 10)
    assert (got["effective_from"], got["effective_until"]) == ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
    assert got["summary"] == "Platinum if nights ≥ 30 in calendar year"
    rule.refresh_from_db()
    assert rule.target_tier_id == tiers["platinum"].pk
    assert audit_trail(tenant) == [("promotionrule.updated", "tiers.promotionrule", str(rule.pk))]
    assert config_version(tenant) == version + 1


def test_put_rule_requires_the_whole_object(api, tenant, ladder):
    before = _state(tenant)

    errors = validation_errors(api.put(f"/api/v1/promotion/rule/{ladder[2].pk}", {"status": "archived"}, format="json"))

    assert errors == {
        "code": ["This field is required."],
        "tier_type": ["This field is required."],
        "criteria": ["This field is required."],
    }
    assert _state(tenant) == before


def test_patch_rule_archives_it(api, tenant, ladder):
    rule = ladder[2]

    response = api.patch(f"/api/v1/promotion/rule/{rule.pk}", {"status": "archived"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "archived"
    assert response.json()["criteria"] == rule.criteria
    rule.refresh_from_db()
    assert rule.status == "archived"
    assert audit_trail(tenant) == [("promotionrule.updated", "tiers.promotionrule", str(rule.pk))]


def test_patch_rule_with_bad_criteria_is_422(api, tenant, ladder):
    before = _state(tenant)

    response = api.patch(f"/api/v1/promotion/rule/{ladder[2].pk}", {"criteria": [{"metric": "spend"}]}, format="json")

    assert validation_errors(response) == {
        "criteria": ["Criterion 1: operator None is not one of gte, gt, lte, lt, eq, ne, in."]
    }
    assert _state(tenant) == before


def test_patch_rule_to_another_type_keeps_target_consistent(api, tenant, ladder):
    air = hotel_ladder(tenant, code="air")[0]
    before = _state(tenant)

    response = api.patch(f"/api/v1/promotion/rule/{ladder[2].pk}", {"tier_type": air.pk}, format="json")

    assert validation_errors(response) == {"target_tier": ["The target tier belongs to another tier type."]}
    assert _state(tenant) == before


def test_delete_rule(api, tenant, ladder):
    rule = ladder[2]
    version = config_version(tenant)

    response = api.delete(f"/api/v1/promotion/rule/{rule.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not PromotionRule.objects.filter(pk=rule.pk).exists()
    assert audit_trail(tenant) == [("promotionrule.deleted", "tiers.promotionrule", str(rule.pk))]
    assert config_version(tenant) == version + 1


def test_delete_rule_that_decided_a_tier_change_is_409_in_use(api, tenant, ladder):
    tier_type, tiers, rule = ladder
    MemberTierChange.objects.create(
        tenant=tenant,
        member=MemberFactory(tenant=tenant),
        tier_type=tier_type,
        from_tier=tiers["member"],
        to_tier=tiers["gold"],
        source="auto",
        rule=rule,
        actor="system",
        at=timezone.now(),
    )
    before = _state(tenant)

    body = assert_problem(api.delete(f"/api/v1/promotion/rule/{rule.pk}"), 409, "in_use")

    assert body["detail"] == (
        "Cannot delete hotel-gold-by-nights: it decided 1 tier change of member history. Archive it instead."
    )
    assert _state(tenant) == before


# --- tenancy --------------------------------------------------------------------------------------
FOREIGN_OBJECTS: dict[str, Callable[[tuple[TierType, dict[str, Tier], PromotionRule]], int]] = {
    "tier/type": lambda f: f[0].pk,
    "tier": lambda f: f[1]["silver"].pk,
    "promotion/rule": lambda f: f[2].pk,
}


@pytest.mark.parametrize("resource", list(FOREIGN_OBJECTS))
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_tenants_object_is_404(api, tenant, ladder, foreign, resource, method):
    pk = FOREIGN_OBJECTS[resource](foreign)
    before = _state(tenant)
    body = {"code": "stolen", "name": "Stolen", "rank": 1, "tier_type": ladder[0].pk, "criteria": [NIGHTS]}

    path = f"/api/v1/{resource}/{pk}"
    response = api.get(path) if method == "get" else getattr(api, method)(path, body, format="json")

    problem = assert_problem(response, 404, "not_found")
    assert problem["detail"] == "Not found."
    assert _state(tenant) == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_tiers_of_another_tenants_type_are_404(api, tenant, foreign, method):
    before = _state(tenant)

    path = f"/api/v1/tier/type/{foreign[0].pk}/tier"
    response = api.get(path) if method == "get" else api.post(path, {**GOLD_TIER, "rank": 9}, format="json")

    assert_problem(response, 404, "not_found")
    assert _state(tenant) == before


def test_missing_ids_are_404(api, tenant):
    for path in ("tier/type/999999", "tier/999999", "promotion/rule/999999", "tier/type/999999/tier"):
        assert_problem(api.get(f"/api/v1/{path}"), 404, "not_found")


def test_lists_show_only_the_callers_tenant(api, tenant, ladder, foreign):
    assert [t["id"] for t in api.get("/api/v1/tier/type").json()["results"]] == [ladder[0].pk]
    assert {t["id"] for t in api.get("/api/v1/tier").json()["results"]} == {t.pk for t in ladder[1].values()}
    assert [r["id"] for r in api.get("/api/v1/promotion/rule").json()["results"]] == [ladder[2].pk]


@pytest.mark.parametrize("field", ["tier_type", "target_tier"])
def test_another_tenants_ids_in_a_rule_body_are_422(api, tenant, ladder, foreign, field):
    foreign_ids = {"tier_type": foreign[0].pk, "target_tier": foreign[1]["gold"].pk}
    before = _state(tenant)

    response = api.post(
        "/api/v1/promotion/rule", _rule_body(ladder[0], ladder[1]["gold"], **{field: foreign_ids[field]}), format="json"
    )

    assert validation_errors(response) == {field: [f'Invalid pk "{foreign_ids[field]}" - object does not exist.']}
    assert _state(tenant) == before


def test_another_tenants_target_tier_in_a_rule_patch_is_422(api, tenant, ladder, foreign):
    before = _state(tenant)

    response = api.patch(
        f"/api/v1/promotion/rule/{ladder[2].pk}", {"target_tier": foreign[1]["gold"].pk}, format="json"
    )

    assert validation_errors(response) == {
        "target_tier": [f'Invalid pk "{foreign[1]["gold"].pk}" - object does not exist.']
    }
    assert _state(tenant) == before


# --- auth, scopes, parsing ------------------------------------------------------------------------
def _writes(ladder: tuple[TierType, dict[str, Tier], PromotionRule]) -> list[tuple[str, str, dict[str, Any]]]:
    tier_type, tiers, rule = ladder
    return [
        ("post", "/api/v1/tier/type", {**HOTEL_TYPE, "code": "new"}),
        ("put", f"/api/v1/tier/type/{tier_type.pk}", {"code": "hotel", "name": "X"}),
        ("patch", f"/api/v1/tier/type/{tier_type.pk}", {"name": "X"}),
        ("delete", f"/api/v1/tier/type/{tier_type.pk}", {}),
        ("post", f"/api/v1/tier/type/{tier_type.pk}/tier", {**GOLD_TIER, "code": "new", "rank": 9}),
        ("put", f"/api/v1/tier/{tiers['platinum'].pk}", {"code": "platinum", "name": "X", "rank": 4}),
        ("patch", f"/api/v1/tier/{tiers['platinum'].pk}", {"name": "X"}),
        ("delete", f"/api/v1/tier/{tiers['platinum'].pk}", {}),
        ("post", "/api/v1/promotion/rule", _rule_body(tier_type, tiers["gold"], code="new")),
        ("put", f"/api/v1/promotion/rule/{rule.pk}", _rule_body(tier_type, tiers["gold"], code=rule.code)),
        ("patch", f"/api/v1/promotion/rule/{rule.pk}", {"status": "archived"}),
        ("delete", f"/api/v1/promotion/rule/{rule.pk}", {}),
    ]


READS = [
    "/api/v1/tier/type",
    "/api/v1/tier/type/{type}",
    "/api/v1/tier/type/{type}/tier",
    "/api/v1/tier",
    "/api/v1/tier/{tier}",
    "/api/v1/promotion/rule",
    "/api/v1/promotion/rule/{rule}",
]


def _read_path(template: str, ladder: tuple[TierType, dict[str, Tier], PromotionRule]) -> str:
    return template.format(type=ladder[0].pk, tier=ladder[1]["gold"].pk, rule=ladder[2].pk)


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_WRITE])
def test_writes_need_the_admin_scope(api_client_for, tenant, ladder, scope):
    client = api_client_for(tenant, scope=scope)
    before = _state(tenant)

    for method, path, body in _writes(ladder):
        response = getattr(client, method)(path, body, format="json")
        assert_problem(response, 403, "insufficient_scope")

    assert _state(tenant) == before


def test_every_write_succeeds_with_the_admin_scope(api_client_for, tenant, ladder):
    client = api_client_for(tenant, scope="privilege:admin")
    expected = {"post": 201, "put": 200, "patch": 200, "delete": 204}
    # Deleting needs the ladder free: the rule goes before the tier it targets and the type they belong to.
    writes = _writes(ladder)
    order = [0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 7]

    for method, path, body in (writes[i] for i in order):
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == expected[method], (method, path, response.content)

    assert AuditEntry.objects.filter(tenant=tenant).count() == len(order)


@pytest.mark.parametrize("template", READS)
def test_reads_need_only_the_read_scope(api_client_for, tenant, ladder, template):
    response = api_client_for(tenant, scope=SCOPE_READ).get(_read_path(template, ladder))

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("template", READS)
def test_reads_without_the_read_scope_are_403(api_client_for, tenant, ladder, template):
    response = api_client_for(tenant, scope="privilege:audit").get(_read_path(template, ladder))

    assert_problem(response, 403, "insufficient_scope")


def test_no_token_is_401_and_stores_nothing(tenant, ladder):
    client = APIClient()
    before = _state(tenant)

    for template in READS:
        response = client.get(_read_path(template, ladder))
        assert_problem(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == 'Bearer realm="privilege"'
    for method, path, body in _writes(ladder):
        assert_problem(getattr(client, method)(path, body, format="json"), 401, "not_authenticated")

    assert _state(tenant) == before


def test_malformed_json_is_400_and_stores_nothing(api, tenant, ladder):
    before = _state(tenant)
    tier_type, tiers, rule = ladder

    for method, path in [
        ("POST", "/api/v1/tier/type"),
        ("PUT", f"/api/v1/tier/type/{tier_type.pk}"),
        ("POST", f"/api/v1/tier/type/{tier_type.pk}/tier"),
        ("PATCH", f"/api/v1/tier/{tiers['gold'].pk}"),
        ("POST", "/api/v1/promotion/rule"),
        ("PATCH", f"/api/v1/promotion/rule/{rule.pk}"),
    ]:
        response = api.generic(method, path, '{"code": "x",', content_type="application/json")
        assert_problem(response, 400, "malformed_json")

    assert _state(tenant) == before


def test_a_json_array_body_is_422_not_500(api, tenant):
    before = _state(tenant)

    response = api.generic("POST", "/api/v1/tier/type", json.dumps([HOTEL_TYPE]), content_type="application/json")

    assert list(validation_errors(response)) == ["non_field_errors"]
    assert _state(tenant) == before

"""``GET /member/{memberId}/export``: everything held about one member, as one document (GDPR/PDPA)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from points.models import PointConversionRule
from tests.factories import MemberFactory
from tests.helpers import assert_problem, stay

pytestmark = pytest.mark.django_db

URL = "/api/v1/member/ann/export"


@pytest.fixture
def ann_with_history(api, ann, tenant):
    PointConversionRule.objects.create(
        tenant=tenant,
        code="base",
        base="per_amount",
        unit_amount=Decimal("1.00"),
        points_per_unit=10,
        event_types=["transaction"],
    )
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    changed = api.put(
        "/api/v1/member/ann/tier", {"tier_type": "hotel", "tier": "gold", "reason": "status match"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    return ann


def test_the_export_holds_the_profile_tiers_history_events_points_and_audit(api, ann_with_history):
    response = api.get(URL)
    assert response.status_code == 200, response.content
    doc = response.json()
    assert set(doc) == {
        "format",
        "exported_at",
        "profile",
        "tiers",
        "tier_history",
        "events",
        "point_transactions",
        "benefit_grants",
        "audit",
    }
    assert doc["profile"]["external_id"] == "ann"
    assert [(t["tier_type_code"], t["tier_code"], t["source"]) for t in doc["tiers"]] == [("hotel", "gold", "manual")]
    assert [(h["from_tier_code"], h["to_tier_code"], h["source"], h["reason"]) for h in doc["tier_history"]] == [
        (None, "member", "auto", doc["tier_history"][0]["reason"]),
        ("member", "gold", "manual", "status match"),
    ]
    assert [(e["event_id"], e["type"], e["amount"], e["quantities"]) for e in doc["events"]] == [
        ("s-1", "transaction", "100.00", {"nights": 1, "stays": 1})
    ]
    assert [(p["kind"], p["points"], p["event_ref"], p["rule_code"]) for p in doc["point_transactions"]] == [
        ("earn", 1000, "s-1", "base")
    ]
    actions = [a["action"] for a in doc["audit"]]
    assert actions[0] == "member.registered"
    assert "member.tier_changed" in actions, actions
    # codes, never internal ids (``event_id`` is the sender's own id of the event)
    for section in ("tiers", "tier_history", "events", "point_transactions", "benefit_grants", "audit"):
        for row in doc[section]:
            assert not [k for k in row if k == "id" or (k.endswith("_id") and k != "event_id")], (section, row)


def test_the_export_reads_a_fixed_number_of_statements_whatever_the_history(api, ann_with_history):
    with CaptureQueriesContext(connection) as small:
        assert api.get(URL).status_code == 200
    for n in range(2, 7):
        assert api.post("/api/v1/member/ann/event", stay(f"s-{n}"), format="json").status_code == 201
    with CaptureQueriesContext(connection) as large:
        doc = api.get(URL).json()
    assert len(doc["events"]) == 6
    assert len(large.captured_queries) == len(small.captured_queries)


def test_another_tenants_member_an_anonymous_caller_and_a_too_small_scope(api, ann, other_tenant, api_client_for):
    MemberFactory(tenant=other_tenant, external_id="theirs")
    assert_problem(api.get("/api/v1/member/theirs/export"), 404, "member_not_found")
    assert_problem(api.get("/api/v1/member/nobody/export"), 404, "member_not_found")
    assert_problem(APIClient().get(URL), 401, "not_authenticated")
    reader = api_client_for(ann.tenant, "privilege:read privilege:write")
    assert_problem(reader.get(URL), 403, "insufficient_scope")

"""After a manual ``PUT .../tier`` or an event-code invitation, ``valid_until`` is set at once, as the
next evaluation computes it (``tiers.engine.held_until``), not null until the next event (issue 11)."""

import uuid

import pytest
from django.utils.dateparse import parse_datetime

from benefits.models import EventCode
from outbox.models import OutboxMessage
from tests.events.test_ingestion import stay
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_attempt_cache(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


def _tier(api) -> dict:
    (entry,) = api.get("/api/v1/member/ann/tier").json()
    return entry


def _after_an_event_that_changes_nothing(api) -> dict:
    body = api.post("/api/v1/member/ann/event", stay("noop", nights=0, amount="0.00"), format="json").json()
    assert body["tier_changes"] == []
    return _tier(api)


def test_a_manual_change_sets_valid_until_as_evaluation_would(api, ann):
    assert MemberTierAssignment.objects.get(member=ann).valid_until is None
    response = api.put(
        "/api/v1/member/ann/tier", {"tier_type": "hotel", "tier": "gold", "reason": "VIP"}, format="json"
    )
    assert response.status_code == 200, response.content
    entry = _tier(api)
    assert entry["tier"] == "gold"
    assert entry["valid_until"] is not None
    assert entry["grace_until"] is not None
    assert [e["valid_until"] for e in response.json() if e["tier_type"] == "hotel"] == [entry["valid_until"]]
    change = MemberTierChange.objects.get(to_tier__code="gold")
    assert change.valid_until == parse_datetime(entry["valid_until"])
    message = OutboxMessage.objects.get(type="tier.changed", data__to="gold")
    assert parse_datetime(message.data["valid_until"]) == change.valid_until
    assert _after_an_event_that_changes_nothing(api)["valid_until"] == entry["valid_until"]


def test_an_event_code_invitation_sets_valid_until_as_evaluation_would(api, tenant, ann, ladder):
    _, tiers, _ = ladder
    EventCode.objects.create(tenant=tenant, code="PLAT", action="promote_tier", tier=tiers["platinum"])
    assert api.post("/api/v1/member/ann/event-code/redeem", {"code": "PLAT"}, format="json").status_code == 201
    entry = _tier(api)
    assert entry["tier"] == "platinum"
    assert entry["valid_until"] is not None
    assert _after_an_event_that_changes_nothing(api)["valid_until"] == entry["valid_until"]

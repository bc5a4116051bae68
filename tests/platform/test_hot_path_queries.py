"""The hot paths pinned by the number of SQL statements they issue (a savepoint and its release count
as two), on SQLite (the default test database) and on PostgreSQL (CI), where each outbox message takes
its sequence number and is inserted in one statement (``outbox.emit``) instead of two.

Every count is measured after a warm-up event, so the per-tenant configuration caches are filled and
the pin is the steady state. A failure here means a change added (or saved) round trips on a hot path:
if the new count is intended, change the pin in the same commit and say why. To see the statements, run
the test with ``-s`` and ``--log-cli-level=DEBUG`` or wrap the call in ``CaptureQueriesContext``.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from benefits.models import Benefit, EventCode, TierBenefitMapping
from events.evaluation import process_member_events
from members.models import MemberEvent
from points.models import PointConversionRule
from tests.helpers import stay

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/member/ann/event"

# Statements per hot path: (SQLite, PostgreSQL).
PINS = {
    "plain": (15, 14),
    "promoting": (33, 30),
    "refund": (18, 17),
    "async run of 10": (61, 51),
    "tier read": (4, 4),
    "redemption": (15, 13),
}


def pin(path: str) -> int:
    sqlite, postgresql = PINS[path]
    return postgresql if connection.vendor == "postgresql" else sqlite


@pytest.fixture
def program(tenant, ladder, api):
    """Points for every transaction (with a daily cap, so cap buckets are read and written), a benefit
    for Gold, an event code worth 500 points; ``ann`` registered and one event posted (caches warm)."""
    _, tiers, _ = ladder
    PointConversionRule.objects.create(
        tenant=tenant,
        code="base",
        base="per_amount",
        unit_amount=Decimal("1.00"),
        points_per_unit=10,
        event_types=["transaction"],
        cap_per_day=100_000,
    )
    lounge = Benefit.objects.create(tenant=tenant, code="lounge", name="Lounge")
    TierBenefitMapping.objects.create(tenant=tenant, tier=tiers["gold"], benefit=lounge)
    EventCode.objects.create(tenant=tenant, code="BONUS", action="award_points", points=500)
    tenant.bump_config_version()
    assert api.post("/api/v1/member", {"external_id": "ann"}, format="json").status_code == 201
    assert api.post(EVENTS, stay("warm-up"), format="json").status_code == 201
    return tiers


def test_a_plain_earning_event(api, program, django_assert_num_queries):
    with django_assert_num_queries(pin("plain")):
        response = api.post(EVENTS, stay("e1"), format="json")
    assert (response.status_code, response.json()["points"]["total"], response.json()["tier_changes"]) == (
        201,
        1000,
        [],
    )


def test_a_promoting_event(api, program, django_assert_num_queries):
    with django_assert_num_queries(pin("promoting")):
        response = api.post(EVENTS, stay("e1", nights=30), format="json")
    body = response.json()
    assert [(c["from"], c["to"]) for c in body["tier_changes"]] == [("member", "gold")]
    assert body["benefits"]["granted"] == ["lounge"], body["benefits"]


def test_a_refund(api, program, django_assert_num_queries):
    refund = {"event_id": "r1", "source": "pos", "type": "refund", "refund_of": "warm-up", "amount": "50.00"}
    refund["occurred_at"] = timezone.now().isoformat()
    with django_assert_num_queries(pin("refund")):
        response = api.post(EVENTS, refund, format="json")
    assert (response.status_code, response.json()["points"]["total"]) == (201, -500)


def test_an_async_run_of_ten_events(api, program, django_assert_num_queries, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        for i in range(10):
            assert api.post(EVENTS, stay(f"a{i}"), format="json", HTTP_PREFER="respond-async").status_code == 202
    member_pk = MemberEvent.objects.get(event_id="a0").member_id

    with django_assert_num_queries(pin("async run of 10")):
        processed = process_member_events(member_id=member_pk)

    assert processed == 10
    assert set(MemberEvent.objects.filter(event_id__startswith="a").values_list("status", flat=True)) == {"processed"}


def test_a_member_tier_read(api, program, django_assert_num_queries):
    with django_assert_num_queries(pin("tier read")):
        response = api.get("/api/v1/member/ann/tier")
    assert [(t["tier_type"], t["tier"]) for t in response.json()] == [("hotel", "member")]


def test_a_redemption(api, program, django_assert_num_queries):
    with django_assert_num_queries(pin("redemption")):
        response = api.post("/api/v1/member/ann/event-code/redeem", {"code": "BONUS"}, format="json")
    assert (response.status_code, response.json()["points"]["points"]) == (201, 500)

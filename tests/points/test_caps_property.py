"""For any arrival order of a set of events, each cap bucket ends with the same total, never over its
cap (DOMAIN §4.4, Principle 2), through the real pipeline (hypothesis). Nested caps that all bind —
a rule's day cap inside its week cap inside a global month cap — are where arrival order would show;
in-order allocation (points/caps.py) makes every event's net points, not only the totals, the same.
"""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.ingestion import ingest_event
from events.registration import register_member
from members.api.serializers import EventInputSerializer
from members.services import Registration
from points.models import PointBucket, PointConversionRule, PointPolicy, PointTransaction
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
RUN = itertools.count()
DAY_CAP = 1_000
WEEK_CAP = 2_500
MONTH_CAP = 6_000


@pytest.fixture
def program():
    tenant = TenantFactory(slug="caps", timezone="Asia/Bangkok")
    PointConversionRule.objects.create(
        tenant=tenant,
        code="base",
        unit_amount=Decimal("1.00"),
        points_per_unit=10,
        cap_per_day=DAY_CAP,
        cap_per_week=WEEK_CAP,
    )
    PointPolicy.objects.create(tenant=tenant, cap_per_month=MONTH_CAP)
    tenant.bump_config_version()
    return tenant


def _post(tenant, member_id: str, event_id: str, hours_ago: int, amount: int) -> None:
    body = {
        "event_id": event_id,
        "source": "pos",
        "type": "transaction",
        "amount": f"{amount}.00",
        "occurred_at": (timezone.now() - timedelta(hours=hours_ago))
        .replace(minute=0, second=0, microsecond=0)
        .isoformat(),
    }
    serializer = EventInputSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    ingest_event(tenant=tenant, member_id=member_id, data=dict(serializer.validated_data), actor="t")


def _buckets(member_id: str) -> dict[str, int]:
    rows = PointBucket.objects.filter(member__external_id=member_id).values_list("key", "total")
    return {key.split(":", 2)[2] if key.startswith("rule") else key: total for key, total in rows}


def _per_event(member_id: str) -> dict[str, int]:
    """Net points per event (earn and adjustments), by the event's index."""
    out: dict[str, int] = {}
    for event_id, points in PointTransaction.objects.filter(member__external_id=member_id).values_list(
        "event__event_id", "points"
    ):
        index = event_id.split("-", 1)[1]
        out[index] = out.get(index, 0) + points
    return out


def _ledger_matches_buckets(member_id: str) -> None:
    """Every bucket holds exactly the net points of its transactions (adjustments included)."""
    assert sum(PointTransaction.objects.filter(member__external_id=member_id).values_list("points", flat=True)) == (
        sum(t for k, t in _buckets(member_id).items() if k.startswith("global:month"))
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(st.tuples(st.integers(1, 24 * 40), st.integers(1, 90)), min_size=1, max_size=14),
    order=st.randoms(use_true_random=False),
)
def test_bucket_totals_do_not_depend_on_arrival_order(program, events, order):
    run = next(RUN)
    ids = (f"a{run}", f"b{run}")
    for member_id in ids:
        register_member(tenant=program, registration=Registration(external_id=member_id), actor="t")
    shuffled = list(enumerate(events))
    for index, (hours, amount) in shuffled:
        _post(program, ids[0], f"{ids[0]}-{index}", hours, amount)
    order.shuffle(shuffled)
    for index, (hours, amount) in shuffled:
        _post(program, ids[1], f"{ids[1]}-{index}", hours, amount)
    first, second = _buckets(ids[0]), _buckets(ids[1])
    assert first == second
    assert _per_event(ids[0]) == _per_event(ids[1])
    caps = {"day": DAY_CAP, "week": WEEK_CAP}
    for key, total in first.items():
        period = key.split(":")[0] if not key.startswith("global") else "global-" + key.split(":")[1]
        assert total <= {"global-month": MONTH_CAP}.get(period, caps.get(period, total))
    for member_id in ids:
        _ledger_matches_buckets(member_id)


def test_one_async_run_of_shuffled_events_ends_like_in_order_posting(
    program, api_client_for, eager_tasks, django_capture_on_commit_callbacks
):
    """The batch path evaluates a member's pending events as one run in arrival order; the in-order
    allocation makes it end exactly like posting the same events one by one in time order."""
    events = [(h, a) for h, a in ((30, 90), (5, 80), (60, 70), (29, 90), (4, 60), (200, 90), (31, 50))]
    for member_id in ("sorted", "batched"):
        register_member(tenant=program, registration=Registration(external_id=member_id), actor="t")
    for index, (hours, amount) in sorted(enumerate(events), key=lambda item: -item[1][0]):  # oldest first
        _post(program, "sorted", f"sorted-{index}", hours, amount)
    when = (timezone.now()).replace(minute=0, second=0, microsecond=0)
    body = [
        {
            "member_id": "batched",
            "event_id": f"batched-{index}",
            "source": "pos",
            "type": "transaction",
            "amount": f"{amount}.00",
            "occurred_at": (when - timedelta(hours=hours)).isoformat(),
        }
        for index, (hours, amount) in enumerate(events)  # arrival order is not time order
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(program).post("/api/v1/events/batch", {"events": body}, format="json")
    assert response.json()["accepted"] == len(events)
    assert _buckets("batched") == _buckets("sorted")
    assert _per_event("batched") == _per_event("sorted")
    assert PointTransaction.objects.filter(member__external_id="batched", kind="adjustment").exists()

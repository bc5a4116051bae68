"""Principle 2 through the real pipeline (hypothesis): the same events in any arrival order give the
same daily metrics and the same final tier."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.ingestion import ingest_event
from events.registration import register_member
from members.api.serializers import EventInputSerializer
from members.models import MetricDay
from members.services import Registration
from tests.factories import TenantFactory, hotel_ladder
from tiers.models import MemberTierAssignment

pytestmark = pytest.mark.django_db
COUNTER = itertools.count()
EVENTS = st.lists(st.tuples(st.integers(1, 300), st.integers(0, 12), st.booleans()), min_size=1, max_size=8)


@pytest.fixture
def program():
    tenant = TenantFactory(slug="order", timezone="Asia/Bangkok")
    hotel_ladder(tenant)
    return tenant


def _post(tenant, member_id: str, index: int, days_ago: int, nights: int, qualifying: bool) -> None:
    body = {
        "event_id": f"{member_id}-e{index}",
        "source": "pos",
        "type": "transaction",
        "occurred_at": (timezone.now() - timedelta(days=days_ago)).replace(microsecond=0).isoformat(),
        "amount": f"{nights * 100}.00",
        "quantities": {"nights": nights, "stays": 1},
        "qualifying": qualifying,
    }
    serializer = EventInputSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    ingest_event(tenant=tenant, member_id=member_id, data=dict(serializer.validated_data), actor="t")


def _state(member_id: str):
    rows = sorted(
        (day, metric, value)
        for day, metric, value in MetricDay.objects.filter(member__external_id=member_id).values_list(
            "day", "metric", "value"
        )
        if value
    )
    return rows, MemberTierAssignment.objects.get(member__external_id=member_id).tier.code


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS, order=st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_metrics_and_tier(program, events, order):
    run = next(COUNTER)
    sorted_id, shuffled_id = f"sorted-{run}", f"shuffled-{run}"
    for member_id in (sorted_id, shuffled_id):
        register_member(tenant=program, registration=Registration(external_id=member_id), actor="t")
    indexed = list(enumerate(events))
    for index, (days_ago, nights, qualifying) in sorted(indexed, key=lambda item: -item[1][0]):
        _post(program, sorted_id, index, days_ago, nights, qualifying)
    shuffled = list(indexed)
    order.shuffle(shuffled)
    for index, (days_ago, nights, qualifying) in shuffled:
        _post(program, shuffled_id, index, days_ago, nights, qualifying)
    assert _state(shuffled_id) == _state(sorted_id)

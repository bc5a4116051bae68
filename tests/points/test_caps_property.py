"""For any arrival order of a set of events, each cap bucket ends with the same total, never over its
cap (DOMAIN §4.4, Principle 2), through the real pipeline (hypothesis).

Known gap (issue 5 stays open for it): with two nested caps that both bind (a day cap inside a week
cap), which days the week's allowance goes to depends on arrival order — every bucket stays within
its cap and the week's total is the same, but the day split is first come, first served. The
property below uses one cap kind, where it holds.
"""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.api.serializers import EventInputSerializer
from events.services import ingest_event
from members.services import Registration, register_member
from points.models import PointBucket, PointConversionRule
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
RUN = itertools.count()
DAY_CAP = 1_000


@pytest.fixture
def program():
    tenant = TenantFactory(slug="caps", timezone="Asia/Bangkok")
    PointConversionRule.objects.create(
        tenant=tenant,
        code="base",
        unit_amount=Decimal("1.00"),
        points_per_unit=10,
        cap_per_day=DAY_CAP,
    )
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


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(st.tuples(st.integers(1, 24 * 20), st.integers(1, 60)), min_size=1, max_size=10),
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
    for key, total in first.items():
        if ":day:" in f":{key}":
            assert total <= DAY_CAP

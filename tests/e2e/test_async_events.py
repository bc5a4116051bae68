"""End to end on the deployed topology: events accepted with 202 are evaluated by a real Celery worker
process (Redis broker, PostgreSQL), per member, exactly once."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from events.registration import register_member
from members.models import MemberEvent
from members.services import Registration
from tests.factories import TenantFactory, hotel_ladder
from tiers.models import MemberTierAssignment


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_async_events_are_evaluated_by_the_worker(celery_worker_process, api_client_for):
    tenant = TenantFactory(slug="e2e", timezone="Asia/Bangkok")
    hotel_ladder(tenant)
    for i in range(5):
        register_member(tenant=tenant, registration=Registration(external_id=f"w{i}"), actor="e2e")
    client = api_client_for(tenant)
    when = timezone.now() - timedelta(days=1)
    events = [
        {
            "event_id": f"e{i}-{j}",
            "source": "pos",
            "type": "transaction",
            "occurred_at": when.isoformat(),
            "amount": "100.00",
            "quantities": {"nights": 5, "stays": 1},
            "member_id": f"w{i}",
        }
        for i in range(5)
        for j in range(6)
    ]
    body = client.post("/api/v1/events/batch", {"events": events}, format="json").json()
    assert body["accepted"] == 30
    single = {k: v for k, v in events[0].items() if k != "member_id"} | {"event_id": "single"}
    response = client.post("/api/v1/member/w0/event", single, format="json", HTTP_PREFER="respond-async")
    assert response.status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if MemberEvent.objects.filter(tenant=tenant, status="processed").count() == 31:
            break
        time.sleep(0.25)
    assert MemberEvent.objects.filter(tenant=tenant, status="processed").count() == 31
    assert MemberEvent.objects.filter(tenant=tenant).exclude(status="processed").count() == 0
    # 30 nights each (w0: 35): every member qualified for gold exactly once.
    tiers = dict(MemberTierAssignment.objects.filter(tenant=tenant).values_list("member__external_id", "tier__code"))
    assert tiers == {f"w{i}": "gold" for i in range(5)}
    detail = client.get(f"/api/v1/event/{response.json()['id']}").json()
    assert detail["status"] == "processed"

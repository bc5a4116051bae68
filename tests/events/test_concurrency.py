"""Per-member serialisation on PostgreSQL: concurrent events of one member are all processed with
exact metrics, and one event posted many times at once has exactly one effect."""

from datetime import timedelta

import pytest
from django.utils import timezone

from events.ingestion import ingest_event
from events.registration import register_member
from members.models import MemberEvent
from members.services import Registration
from tests.concurrency import race
from tests.events.test_async_and_batch import _validated
from tests.events.test_ingestion import stay
from tests.factories import TenantFactory, hotel_ladder
from tiers.metrics import daily_metrics
from tiers.models import MemberTierChange


@pytest.fixture
def setup():
    tenant = TenantFactory(slug="busy", timezone="Asia/Bangkok")
    hotel_ladder(tenant)
    member, _ = register_member(tenant=tenant, registration=Registration(external_id="hot"), actor="t")
    return tenant, member


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_200_distinct_events_from_20_threads_all_count(setup):
    tenant, member = setup
    base = timezone.now() - timedelta(days=3)

    def work(index: int):
        for j in range(10):
            n = index * 10 + j
            body = _validated(stay(f"e{n}", nights=1, when=base + timedelta(minutes=n)))
            ingest_event(tenant=tenant, member_id="hot", data=body, actor="t")
        return "ok"

    results = race(20, work)
    assert results == ["ok"] * 20
    assert MemberEvent.objects.filter(member=member, status="processed", counted=True).count() == 200
    metrics = daily_metrics(member=member)
    today = timezone.now().date() + timedelta(days=1)
    assert metrics.total("quantity:nights", None, today) == 200
    assert metrics.total("transactions", None, today) == 200
    assert metrics.total("spend", None, today) == 200 * 250
    # Promoted to gold exactly once (at the 25th night), whatever the interleaving.
    assert MemberTierChange.objects.filter(member=member, to_tier__code="gold").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_event_posted_by_20_threads_has_one_effect(setup):
    tenant, member = setup
    body = _validated(stay("same", nights=30))

    def work(index: int):
        _, replayed = ingest_event(tenant=tenant, member_id="hot", data=dict(body), actor="t")
        return replayed

    results = race(20, work)
    assert sorted(results) == [False] + [True] * 19
    assert MemberEvent.objects.filter(member=member).count() == 1
    assert daily_metrics(member=member).total("quantity:nights", None, timezone.now().date() + timedelta(days=1)) == 30
    assert MemberTierChange.objects.filter(member=member, to_tier__code="gold").count() == 1

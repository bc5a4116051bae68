"""Demo and benchmark activity: a year of hotel-style events (stays of 1-5 nights, spend per night,
a few missions), generated reproducibly."""

import random
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from events.ingestion import ingest_event
from members.api.serializers import EventInputSerializer
from members.models import Member, MemberEvent
from tenancy.models import Tenant

DEMO_SOURCE = "demo-pos"


def generate_events(
    members: list[str], per_member: int, rng: random.Random, now: datetime, *, source: str = "bench"
) -> list[tuple[str, dict[str, Any]]]:
    """``per_member`` events for each member over the last year, shuffled: (member id, event body)."""
    events = []
    for member in members:
        for n in range(per_member):
            when = now - timedelta(days=rng.uniform(1, 360), hours=rng.uniform(0, 23))
            if rng.random() < 0.85:
                nights = rng.randint(1, 5)
                body: dict[str, Any] = {
                    "type": "transaction",
                    "amount": f"{nights * rng.uniform(80, 400):.2f}",
                    "currency": "USD",
                    "quantities": {"nights": nights, "stays": 1},
                    "channel": rng.choice(["web", "app", "front-desk"]),
                }
            else:
                body = {"type": "mission", "quantities": {}}
            body.update(event_id=f"{member}-{n}-{rng.getrandbits(32):08x}", source=source, occurred_at=when.isoformat())
            events.append((member, body))
    rng.shuffle(events)
    return events


def seed_events(tenant: Tenant, *, per_member: int = 8, actor: Any = "system:seed_demo") -> int:
    """A year of activity for the demo members, through the synchronous pipeline (idempotent: skipped
    when the demo source already has events). Returns how many events were ingested."""
    if MemberEvent.objects.filter(tenant=tenant, source=DEMO_SOURCE).exists():
        return 0
    from django.utils import timezone

    rng = random.Random(11)  # noqa: S311 - demo data, reproducible
    members = list(Member.objects.filter(tenant=tenant).order_by("pk").values_list("external_id", flat=True))
    # The most active tenth of members travel far more: the ladder's upper tiers get inhabitants.
    counts = {m: per_member * (6 if rng.random() < 0.1 else 1) for m in members}
    events = []
    for member, count in counts.items():
        events += generate_events([member], count, rng, timezone.now(), source=DEMO_SOURCE)
    events.sort(key=lambda item: item[1]["occurred_at"])
    for member, body in events:
        serializer = EventInputSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            ingest_event(tenant=tenant, member_id=member, data=dict(serializer.validated_data), actor=actor)
    return len(events)

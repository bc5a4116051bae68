"""Bulk reads for the replay kernel: members' histories a chunk at a time, in a constant number of
queries per chunk (members, counted events, tier history), streamed in member-id order. Chunks are
contiguous member-id ranges, cut by keyset pagination over the member table."""

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from members.models import Member, MemberEvent
from simulation.kernel import FACT_SOURCES, REVIEW_KINDS, EventRecord, MemberHistory, TierFact
from tenancy.models import Tenant
from tiers.models import MemberTierChange
from tiers.types import MemberSnapshot

EVENT_FIELDS = (
    "member_id",
    "pk",
    "event_id",
    "type",
    "occurred_at",
    "processed_at",
    "amount",
    "quantities",
    "product",
    "partner",
    "source",
    "channel",
    "campaign_code",
    "qualifying",
    "refund_of_id",
)
TIER_CHANGE_FIELDS = (
    "member_id",
    "at",
    "tier_type_id",
    "from_tier_id",
    "to_tier_id",
    "source",
    "event_ref",
    "lock_until",
    "expires_at",
)
TIER_CHANGE_FIELDS = (
    "member_id",
    "at",
    "tier_type_id",
    "from_tier_id",
    "to_tier_id",
    "source",
    "event_ref",
    "lock_until",
    "expires_at",
)


def chunks(tenant: Tenant, size: int, *, limit: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(first member pk, last member pk, members) ranges of at most ``size`` members, in pk order, over
    the tenant's members (the first ``limit`` of them when given) — one keyset query per chunk."""
    after = 0
    taken = 0
    while limit is None or taken < limit:
        take = size if limit is None else min(size, limit - taken)
        pks = list(
            Member.objects.filter(tenant=tenant, pk__gt=after).order_by("pk").values_list("pk", flat=True)[:take]
        )
        if not pks:
            return
        yield pks[0], pks[-1], len(pks)
        taken += len(pks)
        after = pks[-1]


def tier_fact(
    at: datetime,
    tier_type_id: int,
    from_tier_id: int | None,
    to_tier_id: int | None,
    source: str,
    event_ref: str,
    lock_until: datetime | None,
    expires_at: datetime | None,
) -> TierFact | None:
    """What a tier history row is to the replay: a fact, an instant to evaluate at, or nothing (the
    change an event run made, which the replay derives itself)."""
    if event_ref and source not in FACT_SOURCES:
        return None
    if to_tier_id is None:
        return TierFact(at=at, tier_type_id=tier_type_id, kind="remove", source=source)
    if source in FACT_SOURCES or from_tier_id is None:
        return TierFact(
            at=at,
            tier_type_id=tier_type_id,
            kind="assign",
            tier_id=to_tier_id,
            source=source,
            lock_until=lock_until,
            expires_at=expires_at,
        )
    kinds = REVIEW_KINDS if source == "review" else None
    return TierFact(at=at, tier_type_id=tier_type_id, kind="evaluate", source=source, kinds=kinds)


def histories(tenant: Tenant, first: int, last: int, *, until: datetime | None = None) -> list[MemberHistory]:
    """The histories of the tenant's members with pk in [first, last]: three queries."""
    events: dict[int, list[EventRecord]] = defaultdict(list)
    rows = MemberEvent.objects.filter(
        tenant=tenant, member_id__gte=first, member_id__lte=last, counted=True, processed_at__isnull=False
    )
    if until is not None:
        rows = rows.filter(processed_at__lte=until)
    for row in rows.order_by("member_id", "processed_at", "id").values_list(*EVENT_FIELDS).iterator(chunk_size=5000):
        events[row[0]].append(EventRecord(*row[1:]))  # EVENT_FIELDS after member_id: the record's fields
    facts: dict[int, list[TierFact]] = defaultdict(list)
    changes = MemberTierChange.objects.filter(tenant=tenant, member_id__gte=first, member_id__lte=last)
    for change in changes.order_by("member_id", "at", "id").only(*TIER_CHANGE_FIELDS):
        fact = tier_fact(
            change.at,
            change.tier_type_id,
            change.from_tier_id,
            change.to_tier_id,
            change.source,
            change.event_ref,
            change.lock_until,
            change.expires_at,
        )
        if fact is not None:
            facts[change.member_id].append(fact)
    return [
        MemberHistory(
            pk=pk,
            external_id=external_id,
            member=MemberSnapshot(registered_at=registered_at, attributes=attributes or {}),
            events=events.get(pk, []),
            facts=facts.get(pk, []),
        )
        for pk, external_id, registered_at, attributes in Member.objects.filter(
            tenant=tenant, pk__gte=first, pk__lte=last
        )
        .order_by("pk")
        .values_list("pk", "external_id", "registered_at", "attributes")
    ]

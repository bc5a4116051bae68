"""Cap buckets (DOMAIN §4.4): what each member has earned per rule and in all, per calendar day, ISO
week and month of ``occurred_at`` in tenant time, kept in :class:`~points.models.PointBucket` rows that
grow with atomic upserts under the member's lock.

And **in-order allocation**, which makes the outcome independent of arrival order. Caps are allocated
in ``occurred_at`` order: an award gets what its buckets have left after the awards that occurred
before it. An event that arrives late (occurring before awards already made in its buckets) and finds
a period cap binding takes its share first, and the later awards are re-allocated in the same
transaction, each difference an ``adjustment`` transaction with a ``points.adjusted`` message. With a
day cap inside a week cap this is what keeps the per-day totals, not just the week's, the same for
every arrival order.

Choices where DOMAIN.md is silent (tested in tests/points):

* When a late event is not cut by any period cap, the order-independent result is the one already
  stored (adding an award that fits cannot change what came after), so nothing is re-allocated: the
  common path costs no extra query.
* Re-allocation moves only plain earns: an earn that drew on a campaign pool (pools are first come,
  first served across members), one that was refunded or rolled back, and one stored before demands
  were recorded stay as they are and simply count in their buckets. An event that itself drew on a
  pool is not re-allocated around either.
* Re-allocation uses the caps configured now; the points before caps (the ``demand``) are the ones
  computed when each event was evaluated.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Sum

from config.tracing import current_request_id
from members.models import Member, MemberEvent
from outbox.emit import emit
from points.buckets import award_buckets, bucket_keys, horizon
from points.engine import reallocate, touched_buckets
from points.models import PointBucket, PointTransaction
from points.types import Award, ConversionRuleSpec, LaterEarn, Policy
from tenancy.models import Tenant
from tiers.metrics import add_contributions, points_contributions


def add_to_buckets(*, tenant: Tenant, member: Member, values: dict[str, int]) -> None:
    """Atomic multi-row upsert of bucket totals (the caller holds the member's lock)."""
    rows = [(key, value) for key, value in values.items() if value]
    if not rows:
        return
    table = PointBucket._meta.db_table
    params: list[int | str] = []
    for key, value in rows:
        params += [tenant.pk, member.pk, key, value]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, member_id, key, total) VALUES "  # noqa: S608
            + ", ".join(["(%s, %s, %s, %s)"] * len(rows))
            + f" ON CONFLICT (member_id, key) DO UPDATE SET total = {table}.total + EXCLUDED.total",
            params,
        )


def reallocate_after(
    *,
    tenant: Tenant,
    member: Member,
    event: MemberEvent,
    awards: Sequence[Award],
    rules: Sequence[ConversionRuleSpec],
    policy: Policy,
    pooled_codes: Iterable[str],
    tz: ZoneInfo,
) -> tuple[Award, ...]:
    """The late ``event``'s awards allocated in ``occurred_at`` order with the awards that occur after
    it (``points.engine.reallocate``); those later awards whose share changes get ``adjustment``
    transactions (saved, buckets and the points metric updated, a ``points.adjusted`` message written).
    The caller has not yet counted ``awards`` anywhere and holds the member's lock."""
    pooled_codes = set(pooled_codes)
    order = (event.occurred_at, event.event_id, event.pk)  # arrival-independent: the client's id breaks ties
    reach = horizon(event.occurred_at, tz)
    while True:
        movable, later = _movable_earns(member, event, order, reach, pooled_codes)
        keys = touched_buckets(awards, event.occurred_at, later, tz)
        totals = dict(PointBucket.objects.filter(member=member, key__in=keys).values_list("key", "total"))
        outcome = reallocate(
            awards=awards, occurred_at=event.occurred_at, later=later, totals=totals, rules=rules, policy=policy, tz=tz
        )
        if outcome.reach <= reach:
            break
        reach = outcome.reach  # a changed award's month runs past what was loaded: load up to its end too
    changed = [tx for tx in movable if tx.pk in outcome.changed]
    current = {e.key: e.current for e in later}
    _adjust(tenant, member, event, changed, outcome.changed, current, tz)
    return outcome.awards


def _movable_earns(
    member: Member, event: MemberEvent, order: tuple[datetime, str, int], until: datetime, pooled_codes: set[str]
) -> tuple[list[PointTransaction], list[LaterEarn]]:
    """The member's earns from ``event`` on to ``until`` that in-order allocation may move (oldest
    first), as rows and as the engine reads them (current points: its own and the adjustments of its
    event and rule)."""
    earns = [
        tx
        for tx in PointTransaction.objects.filter(
            member=member,
            kind=PointTransaction.Kind.EARN,
            occurred_at__gte=event.occurred_at,
            occurred_at__lt=until,
            demand__isnull=False,
        )
        .exclude(event=event)
        .select_related("event")
        .order_by("occurred_at", "event__event_id", "event_id", "id")
        if (tx.occurred_at, tx.event.event_id, tx.event_id) > order  # type: ignore[union-attr]
        and not tx.capped_by.startswith("pool:")
        and not any(m.get("code") in pooled_codes for m in tx.modifiers)
    ]
    if not earns:
        return [], []
    reversed_ids = set(PointTransaction.objects.filter(reversal_of__in=earns).values_list("reversal_of_id", flat=True))
    earns = [tx for tx in earns if tx.pk not in reversed_ids]
    adjusted = {
        (event_id, rule_id): n
        for event_id, rule_id, n in PointTransaction.objects.filter(
            kind=PointTransaction.Kind.ADJUSTMENT, event_id__in={tx.event_id for tx in earns}
        )
        .values_list("event_id", "rule_id")
        .annotate(n=Sum("points"))
    }
    later = [
        LaterEarn(
            key=tx.pk,
            rule_id=tx.rule_id,  # type: ignore[arg-type]
            occurred_at=tx.occurred_at,
            demand=tx.demand or 0,
            current=tx.points + adjusted.get((tx.event_id, tx.rule_id), 0),
        )
        for tx in earns
    ]
    return earns, later


def _adjust(
    tenant: Tenant,
    member: Member,
    cause: MemberEvent,
    changed: list[PointTransaction],
    result: Mapping[Any, tuple[int, str | None]],
    current: Mapping[Any, int],
    tz: ZoneInfo,
) -> None:
    if not changed:
        return
    events = MemberEvent.objects.in_bulk({tx.event_id for tx in changed})
    adjustments = PointTransaction.objects.bulk_create(
        PointTransaction(
            tenant=tenant,
            member=member,
            event_id=tx.event_id,
            kind=PointTransaction.Kind.ADJUSTMENT,
            rule_id=tx.rule_id,
            uncapped=tx.uncapped,
            points=result[tx.pk][0] - current[tx.pk],
            capped_by=result[tx.pk][1] or "",
            occurred_at=tx.occurred_at,
            correlation_id=current_request_id(),
        )
        for tx in changed
    )
    buckets: dict[str, int] = defaultdict(int)
    metrics: dict[tuple[date, str], Any] = defaultdict(int)
    for adj in adjustments:
        for key in award_buckets(adj.rule_id, bucket_keys(adj.occurred_at, tz)):
            buckets[key] += adj.points
        for day_metric, value in points_contributions(events[adj.event_id], tenant, adj.points).items():
            metrics[day_metric] += value
    add_to_buckets(tenant=tenant, member=member, values=dict(buckets))
    add_contributions(tenant=tenant, member=member, values=dict(metrics))
    emit(
        tenant=tenant,
        type="points.adjusted",
        member_id=member.external_id,
        occurred_at=cause.occurred_at,
        data={
            "reason": "cap_reallocation",
            "caused_by": cause.event_id,
            "total": sum(adj.points for adj in adjustments),
            "transactions": [
                {"id": adj.pk, "event_id": events[adj.event_id].event_id, "points": adj.points} for adj in adjustments
            ],
        },
    )

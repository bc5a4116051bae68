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
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Sum

from config.tracing import current_request_id
from events.models import MemberEvent
from members.models import Member
from outbox.emit import emit
from points.engine import PERIODS, allocate
from points.models import PointBucket, PointTransaction
from points.types import Award, CapShare, ConversionRuleSpec, Policy
from tenancy.models import Tenant


def bucket_keys(at: datetime, tz: ZoneInfo) -> dict[str, str]:
    """The cap buckets of an instant, in tenant time: day, ISO week, month."""
    local = at.astimezone(tz).date()
    year, week, _ = local.isocalendar()
    return {"day": local.isoformat(), "week": f"{year}-W{week:02d}", "month": f"{local.year}-{local.month:02d}"}


def bucket_names(rule_id: int | None, keys: dict[str, str]) -> dict[str, str]:
    """Engine allowance name → stored bucket key, for one rule (or the global buckets with None)."""
    owner = f"rule:{rule_id}" if rule_id is not None else "global"
    return {f"{owner}:{period}": f"{owner}:{period}:{key}" for period, key in keys.items()}


def capped_bucket_names(rules: Sequence[ConversionRuleSpec], policy: Policy, keys: dict[str, str]) -> dict[str, str]:
    """Engine allowance name → stored bucket key, for the period buckets some cap reads (the engine
    needs no other totals; every bucket is still counted, so a cap added later finds its total)."""
    names = {}
    for period, key in keys.items():
        if getattr(policy, f"cap_per_{period}") is not None:
            names[f"global:{period}"] = f"global:{period}:{key}"
        for rule in rules:
            if getattr(rule, f"cap_per_{period}") is not None:
                names[f"rule:{rule.id}:{period}"] = f"rule:{rule.id}:{period}:{key}"
    return names


def award_buckets(rule_id: int | None, keys: dict[str, str]) -> tuple[str, ...]:
    """Every stored bucket an award of ``rule_id`` counts in: the rule's and the global ones."""
    return (*bucket_names(rule_id, keys).values(), *bucket_names(None, keys).values())


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


def cut_by_period(award: Award) -> bool:
    return bool(award.capped_by) and award.capped_by.rsplit(":", 1)[-1] in PERIODS  # type: ignore[union-attr]


def _share_buckets(rule_id: int, at: datetime, tz: ZoneInfo) -> tuple[tuple[str, str], ...]:
    """(allowance name, bucket key) in the engine's order: per period, the rule's then the global."""
    keys = bucket_keys(at, tz)
    return tuple(
        pair
        for period in PERIODS
        for pair in (
            (f"rule:{period}", f"rule:{rule_id}:{period}:{keys[period]}"),
            (f"global:{period}", f"global:{period}:{keys[period]}"),
        )
    )


def _caps(rules: Sequence[ConversionRuleSpec], policy: Policy) -> dict[str, int | None]:
    """Bucket key prefix (``rule:7:week``, ``global:day``) → its cap, None when uncapped."""
    caps: dict[str, int | None] = {}
    for period in PERIODS:
        caps[f"global:{period}"] = getattr(policy, f"cap_per_{period}")
        for rule in rules:
            caps[f"rule:{rule.id}:{period}"] = getattr(rule, f"cap_per_{period}")
    return caps


def _horizon(at: datetime, tz: ZoneInfo) -> datetime:
    """The end of the last ISO week that touches the month of ``at``: every bucket sharing a day, week
    or month with ``at`` ends by then."""
    local = at.astimezone(tz).date()
    month_end = date(local.year + (local.month == 12), local.month % 12 + 1, 1)
    last = month_end - timedelta(days=1)
    return datetime.combine(last + timedelta(days=7 - last.weekday()), time.min, tzinfo=tz)


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
    it; those later awards whose share changes get ``adjustment`` transactions (saved, buckets and the
    points metric updated, a ``points.adjusted`` message written). The caller has not yet counted
    ``awards`` anywhere and holds the member's lock."""
    pooled_codes = set(pooled_codes)
    order = (event.occurred_at, event.event_id, event.pk)  # arrival-independent: the client's id breaks ties
    caps = _caps(rules, policy)
    own = [
        CapShare(key=("own", i), demand=a.demand, buckets=_share_buckets(a.rule_id, event.occurred_at, tz))
        for i, a in enumerate(awards)
    ]
    horizon = _horizon(event.occurred_at, tz)
    while True:
        movable, current = _movable_earns(member, event, order, horizon, pooled_codes)
        theirs = [
            CapShare(key=tx.pk, demand=tx.demand or 0, buckets=_share_buckets(tx.rule_id, tx.occurred_at, tz))  # type: ignore[arg-type]
            for tx in movable
        ]
        touched = {key for share in own + theirs for _, key in share.buckets}
        capped = {key: cap for key in touched if (cap := caps.get(key.rsplit(":", 1)[0])) is not None}
        used: dict[str, int] = defaultdict(
            int, PointBucket.objects.filter(member=member, key__in=touched).values_list("key", "total")
        )
        for tx, share in zip(movable, theirs, strict=True):  # the buckets apart from what is re-allocated
            for _, key in share.buckets:
                used[key] -= current[tx.pk]
        result = allocate(own + theirs, capped, used)
        changed = [tx for tx in movable if result[tx.pk][0] != current[tx.pk]]
        reach = max((_horizon(tx.occurred_at, tz) for tx in changed), default=horizon)
        if reach <= horizon:
            break
        horizon = reach  # a changed award's month runs past what was loaded: load up to its end too
    mine = tuple(
        replace(a, points=result[("own", i)][0], capped_by=result[("own", i)][1] or _event_cap(a))
        for i, a in enumerate(awards)
    )
    _adjust(tenant, member, event, changed, result, current, tz)
    return mine


def _event_cap(award: Award) -> str | None:
    """The per-event cap or pool that cut the demand, if any (what remains once no period cap cuts)."""
    return award.capped_by if award.capped_by and not cut_by_period(award) else None


def _movable_earns(
    member: Member, event: MemberEvent, order: tuple[datetime, str, int], horizon: datetime, pooled_codes: set[str]
) -> tuple[list[PointTransaction], dict[int, int]]:
    """The member's earns from ``event`` on to ``horizon`` that in-order allocation may move (oldest
    first), and each one's current net points (its points and the adjustments of its event and rule)."""
    earns = [
        tx
        for tx in PointTransaction.objects.filter(
            member=member,
            kind=PointTransaction.Kind.EARN,
            occurred_at__gte=event.occurred_at,
            occurred_at__lt=horizon,
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
        return [], {}
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
    return earns, {tx.pk: tx.points + adjusted.get((tx.event_id, tx.rule_id), 0) for tx in earns}


def _adjust(
    tenant: Tenant,
    member: Member,
    cause: MemberEvent,
    changed: list[PointTransaction],
    result: dict[Any, tuple[int, str | None]],
    current: dict[int, int],
    tz: ZoneInfo,
) -> None:
    from events.metrics import add_contributions, points_contributions

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

"""Retroactive recalculation (DOMAIN §4.5): what the rules *now* say an event should have earned,
against what it was awarded, for a date range and a set of members; ``adjustment`` transactions for
the differences when applied, a report only otherwise (dry run is the default).

Choices where DOMAIN.md is silent:

* The range is widened to whole ISO weeks and calendar months (tenant time), so every cap bucket it
  touches is recomputed in full; caps are simulated from zero over the widened range, in
  ``occurred_at`` order.
* An event is recalculated at the tiers the member held when it was evaluated (read from the tier
  history), as the pipeline did.
* What an event "was awarded" is net: its earn and earlier adjustment transactions, less what refunds
  and rollbacks reversed of them; what it "should earn" is likewise reduced by the share refunded.
* Campaign pools are not redrawn: an event whose award used a pooled modifier is left out and reported
  as skipped (its uplift came from a shared, first-come pool that a replay cannot reproduce); so is an
  event whose points an operator rolled back (a recalculation must not credit them again).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction

from members.locks import lock_member
from members.models import Member, MemberEvent
from points.buckets import award_buckets, bucket_keys, bucket_names
from points.engine import calculate, point_event
from points.models import PointTransaction
from points.selectors import point_specs
from points.services import EventAdjustment, record_event_adjustments
from tenancy.models import Tenant
from tiers.models import MemberTierChange, Tier


@dataclass
class RecalculationReport:
    since: date
    until: date
    applied: bool
    members: int = 0
    events: int = 0
    skipped: list[str] = field(default_factory=list)
    adjustments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(a["difference"] for a in self.adjustments)


def widen(since: date, until: date) -> tuple[date, date]:
    """[since, until) grown to whole ISO weeks and calendar months."""
    start = min(since - timedelta(days=since.weekday()), since.replace(day=1))
    last = until - timedelta(days=1)
    week_end = last + timedelta(days=7 - last.weekday())
    month_end = date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return start, max(week_end, month_end)


def _tiers_at(changes: list[MemberTierChange], at: datetime) -> dict[int, Tier]:
    """tier type id → the tier held at ``at``, from the member's tier history (oldest first)."""
    held: dict[int, Tier] = {}
    for change in changes:
        if change.at > at:
            break
        if change.to_tier is None:
            held.pop(change.tier_type_id, None)
        else:
            held[change.tier_type_id] = change.to_tier
    return held


def recalculate_points(
    *, tenant: Tenant, since: date, until: date, actor: Any, members: list[Member] | None = None, apply: bool = False
) -> RecalculationReport:
    """Compare and (with ``apply``) adjust. ``members`` defaults to every member with counted events in
    the range. Each member is handled in its own transaction holding its lock."""
    tz = ZoneInfo(tenant.timezone)
    start, end = widen(since, until)
    report = RecalculationReport(since=start, until=end, applied=apply)
    start_at = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    end_at = datetime.combine(end, datetime.min.time(), tzinfo=tz)
    if members is None:
        ids = (
            MemberEvent.objects.filter(tenant=tenant, counted=True, occurred_at__gte=start_at, occurred_at__lt=end_at)
            .values_list("member_id", flat=True)
            .distinct()
        )
        members = list(Member.objects.filter(pk__in=ids).order_by("pk"))
    for member in members:
        with transaction.atomic():
            _recalculate_member(tenant, lock_member(member) if apply else member, start_at, end_at, tz, report, actor)
        report.members += 1
    return report


def _recalculate_member(
    tenant: Tenant,
    member: Member,
    start_at: datetime,
    end_at: datetime,
    tz: ZoneInfo,
    report: RecalculationReport,
    actor: Any,
) -> None:
    rules, mods, policy = point_specs(tenant=tenant)
    pooled = {m.code for m in mods if m.campaign_total is not None}
    events = list(
        MemberEvent.objects.filter(member=member, counted=True, occurred_at__gte=start_at, occurred_at__lt=end_at)
        .exclude(type="refund")
        .order_by("occurred_at", "event_id", "id")
    )
    changes = list(MemberTierChange.objects.filter(member=member).select_related("to_tier").order_by("at", "id"))
    awarded: dict[tuple[int, int | None], int] = defaultdict(int)
    txs = PointTransaction.objects.filter(member=member, event__in=events, kind__in=["earn", "adjustment"])
    used_pools = {tx.event_id for tx in txs if any(m.get("code") in pooled for m in tx.modifiers)}
    for event_id, rule_id, points in txs.values_list("event_id", "rule_id", "points"):
        awarded[(event_id, rule_id)] += points
    rolled_back: set[int] = set()
    reversals = PointTransaction.objects.filter(reversal_of__event__in=events).values_list(
        "event", "reversal_of__event", "reversal_of__rule", "points"
    )
    for reversal_event, original_event, rule_id, points in reversals:
        awarded[(int(original_event), rule_id)] += points
        if reversal_event == original_event:  # a rollback, not a refund
            rolled_back.add(int(original_event))
    used: dict[str, int] = defaultdict(int)  # simulated buckets over the widened range
    member_adjustments: list[dict[str, Any]] = []
    for event in events:
        report.events += 1
        if event.pk in used_pools:
            report.skipped.append(f"{member.external_id}/{event.event_id}: used a campaign pool")
            continue
        if event.pk in rolled_back:
            report.skipped.append(f"{member.external_id}/{event.event_id}: rolled back by an operator")
            continue
        held = _tiers_at(changes, event.processed_at or event.received_at)
        keys = bucket_keys(event.occurred_at, tz)
        view = {
            name: used[key] for rule in (None, *[r.id for r in rules]) for name, key in bucket_names(rule, keys).items()
        }
        awards = calculate(
            rules=rules,
            modifiers=[m for m in mods if m.campaign_total is None],
            event=point_event(event),
            tier_multipliers={tt: tier.point_multiplier for tt, tier in held.items()},
            held_tier_ids=frozenset(t.pk for t in held.values()),
            policy=policy,
            used=view,
            tz=tz,
        )
        share = event.refunded_amount / event.amount if event.amount else Decimal(0)
        should: dict[int | None, int] = {}
        for award in awards:
            for key in award_buckets(award.rule_id, keys):
                used[key] += award.points
            refunded = int((Decimal(award.points) * share).to_integral_value(ROUND_FLOOR))
            should[award.rule_id] = award.points - refunded
        rule_ids = set(should) | {rule_id for (event_id, rule_id) in awarded if event_id == event.pk}
        for rule_id in sorted(rule_ids, key=lambda r: (r is None, r or 0)):  # type: ignore[assignment]
            difference = should.get(rule_id, 0) - awarded.get((event.pk, rule_id), 0)
            if difference:
                member_adjustments.append(
                    {
                        "member_id": member.external_id,
                        "event_id": event.event_id,
                        "event": event,
                        "rule_id": rule_id,
                        "awarded": awarded.get((event.pk, rule_id), 0),
                        "should": should.get(rule_id, 0),
                        "difference": difference,
                    }
                )
    report.adjustments += [{k: v for k, v in a.items() if k != "event"} for a in member_adjustments]
    if not report.applied or not member_adjustments:
        return
    record_event_adjustments(
        tenant=tenant,
        member=member,
        adjustments=[
            EventAdjustment(a["event"], a["rule_id"], a["difference"], a["should"]) for a in member_adjustments
        ],
        actor=actor,
        action="points.recalculated",
    )

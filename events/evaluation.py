"""Evaluation of member events (DOMAIN §4-§5): one member's events in one transaction holding the
member's row lock (so one member's events are processed one at a time, different members' in parallel):
points first (at the tiers held before the event; ``points.services``), then the daily metrics (the
points included), then the tier engine for every active tier type with the benefit sync, then campaign
benefits and the stored result. Also the evaluation of a member outside any event (the evaluate
endpoints, the periodic review)."""

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from benefits.campaigns import grant_campaign_benefits
from benefits.grants import sync_tier_benefits
from members.locks import lock_member
from members.models import Member, MemberEvent
from points.selectors import point_specs
from points.services import award_event_points, reverse_refunded_points
from tenancy.models import Tenant
from tiers.assignments import evaluate_member_tiers
from tiers.metrics import add_contributions, contributions, daily_metrics
from tiers.models import MemberTierAssignment
from tiers.progress import metrics_since
from tiers.selectors import tier_type_specs

MAX_ATTEMPTS = 6


def process_event_locked(*, tenant: Tenant, member: Member, event: MemberEvent) -> MemberEvent:
    """Evaluate one event and save it (an insert for a new event). The caller holds the member's lock."""
    process_run_locked(tenant=tenant, member=member, events=[event])
    if event.pk is None:
        event.save(force_insert=True)
    else:  # already inserted (by ingestion): write back what evaluation set
        event.save(update_fields=RUN_FIELDS)
    return event


RUN_FIELDS = ["status", "processed_at", "last_error", "counted", "result"]  # what process_run_locked sets


def process_run_locked(*, tenant: Tenant, member: Member, events: list[MemberEvent]) -> None:
    """Evaluate a member's events (in order) as one run: each event's points in turn (caps depend on
    what came before), all their metric contributions in one upsert, then the tier engine once, after
    all of them. Sets each event's status and result; the caller holds the member's lock and saves the
    events.

    Evaluating once per run is what makes the asynchronous path fast; the final state is the same as
    one evaluation per event (claims derive from the metrics). The run's tier changes are reported on
    its last event, which they name as their cause.
    """
    now = timezone.now()
    tier_changes: list[dict[str, Any]] = []
    points: dict[int, tuple[int, list[dict[str, Any]]]] = {}
    benefit_changes: dict[str, list] = {}
    campaign: dict[int, dict[str, list]] = {}  # an event's own campaign grants
    note = ""
    if member.status != Member.Status.ACTIVE:
        note = f"member {member.status}: stored, earns nothing, moves no tier"
    else:
        totals: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
        assignments = list(MemberTierAssignment.objects.filter(member=member).select_related("tier"))
        earns_points = bool(point_specs(tenant=tenant)[0])
        for event in events:
            if event.pk is None and (earns_points or event.refund_of_id is not None):
                event.save(force_insert=True)  # point transactions reference it
            original = None
            if event.refund_of_id is not None:
                MemberEvent.objects.filter(pk=event.refund_of_id).update(
                    refunded_amount=F("refunded_amount") + (event.amount or Decimal(0))
                )
                original = _refunded_original(event, event.refund_of_id)
                earned = reverse_refunded_points(tenant=tenant, member=member, refund=event, original=original)
            elif earns_points:
                earned = award_event_points(tenant=tenant, member=member, event=event, assignments=assignments)
            else:
                earned = (0, [])
            points[id(event)] = earned
            for key, value in contributions(event, tenant, original=original, points=earned[0]).items():
                totals[key] += value
            event.counted = True
        add_contributions(tenant=tenant, member=member, values=totals)
        latest = max(event.occurred_at for event in events)
        if member.last_event_at is None or latest > member.last_event_at:
            Member.objects.filter(pk=member.pk).update(last_event_at=latest)
            member.last_event_at = latest
        since = metrics_window_start(tenant=tenant, assignments=assignments, now=now)
        tier_changes = evaluate_member_tiers(
            tenant=tenant,
            member=member,
            metrics=daily_metrics(member=member, since=since),
            now=now,
            actor=f"system:event:{events[-1].ref}",
            event_ref=events[-1].ref,
            assignments=assignments,
        )
        if tier_changes:
            held_before: dict[str, str | None] = {}
            for change in tier_changes:
                held_before.setdefault(change["tier_type"], change["from"])
            benefit_changes = sync_tier_benefits(
                tenant=tenant, member=member, actor=f"system:event:{events[-1].ref}", held_before=held_before
            )
        for event in events:
            if event.campaign_code and event.type != "refund":
                campaign[id(event)] = grant_campaign_benefits(
                    tenant=tenant,
                    member=member,
                    campaign_code=event.campaign_code,
                    actor=f"system:event:{event.ref}",
                    now=now,
                )
    for event in events:
        event.status = MemberEvent.Status.PROCESSED
        event.processed_at = now
        event.last_error = ""
        last = event is events[-1]
        event.result = event_result(
            event,
            tier_changes=tier_changes if last else [],
            note=note,
            points=points.get(id(event)),
            benefits=_merge(benefit_changes if last else {}, campaign.get(id(event), {})),
        )


def _refunded_original(refund: MemberEvent, original_id: int) -> MemberEvent:
    """The event a refund refunds, as stored after the refund's amount was added to it. Ingestion has
    loaded it already (validation); the member's lock, held here, keeps anyone else from refunding it
    meanwhile, so adding the amount to the loaded row equals reading it again."""
    original = refund.refund_of if MemberEvent.refund_of.is_cached(refund) else None
    if original is None:
        return MemberEvent.objects.get(pk=original_id)
    original.refunded_amount += refund.amount or Decimal(0)
    return original


def _merge(*changes: dict[str, list]) -> dict[str, list]:
    out: dict[str, list] = {}
    for change in changes:
        for key, codes in change.items():
            out.setdefault(key, []).extend(codes)
    return out


def _benefits_block(changes: dict[str, list]) -> dict[str, list]:
    """API.md's benefits block; ``exhausted`` (limited quantities already given out) only when any."""
    block = {"granted": changes.get("granted", []), "revoked": changes.get("revoked", [])}
    if changes.get("exhausted"):
        block["exhausted"] = changes["exhausted"]
    return block


def process_member_events(*, member_id: int, limit: int = 500) -> int:
    """The task body: evaluate every pending event of one member (oldest first, at most ``limit``) as one
    run. Idempotent: processed events are not pending, so a repeated or late task finds nothing."""
    with transaction.atomic():
        member = lock_member(Member(pk=member_id))
        pending = list(
            MemberEvent.objects.filter(
                member=member, status__in=[MemberEvent.Status.RECEIVED, MemberEvent.Status.FAILED]
            ).order_by("received_at", "id")[:limit]
        )
        if not pending:
            return 0
        process_run_locked(tenant=Tenant.objects.get(pk=member.tenant_id), member=member, events=pending)
        # A run leaves the same status, time and counted flag on each of its events; only results differ
        # (one plain UPDATE and a one-column bulk update: far cheaper to build than five CASE columns).
        first = pending[0]
        MemberEvent.objects.filter(pk__in=[e.pk for e in pending]).update(
            status=first.status, processed_at=first.processed_at, last_error="", counted=first.counted
        )
        MemberEvent.objects.bulk_update(pending, ["result"])
        return len(pending)


def metrics_window_start(*, tenant: Tenant, assignments: list[MemberTierAssignment], now: datetime) -> date | None:
    """The earliest day any active tier type can still need (None = every day)."""
    tz = ZoneInfo(tenant.timezone)
    enrolled = {a.tier_type_id: a.enrolled_at for a in assignments}
    starts = [metrics_since(spec, now, tz, enrolled.get(spec.id, now)) for spec in tier_type_specs(tenant=tenant)]
    if not starts or any(s is None for s in starts):
        return None
    return min(s for s in starts if s is not None)


def event_result(
    event: MemberEvent,
    *,
    tier_changes: list[dict[str, Any]],
    note: str = "",
    points: tuple[int, list[dict[str, Any]]] | None = None,
    benefits: dict[str, list] | None = None,
) -> dict[str, Any]:
    """The event's result as API.md shapes it, less its ``id`` (known only once the event is saved; see
    ``MemberEvent.result_body``). Points and benefits arrive with their issues."""
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "source": event.source,
        "status": event.status,
        "points": {"total": points[0] if points else 0, "transactions": points[1] if points else []},
        "tier_changes": tier_changes,
        "benefits": _benefits_block(benefits or {}),
    }
    if note:
        body["note"] = note
    return body


def record_failure(*, member_id: int, error: BaseException, final: bool) -> None:
    """Mark the member's pending events failed (or dead after the last attempt), in their own
    transaction, so they are visible and, when dead, replayable."""
    status = MemberEvent.Status.DEAD if final else MemberEvent.Status.FAILED
    MemberEvent.objects.filter(
        member_id=member_id, status__in=[MemberEvent.Status.RECEIVED, MemberEvent.Status.FAILED]
    ).update(status=status, attempts=F("attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:2000])


REVIEW_KINDS = frozenset({"demotion", "expiry", "time_bound_end"})


def evaluate_member_now(
    *,
    tenant: Tenant,
    member: Member,
    actor: Any,
    kinds: frozenset[str] | None = None,
    dry_run: bool = False,
    source: str = "auto",
) -> list[dict[str, Any]]:
    """Evaluate a member's tiers now, outside any event (the evaluate endpoints and the periodic
    review), applying only ``kinds`` of movement; ``dry_run`` reports without writing."""
    now = timezone.now()
    with transaction.atomic():
        if not dry_run:
            member = lock_member(member)
        if member.status != Member.Status.ACTIVE:
            return []
        assignments = list(MemberTierAssignment.objects.filter(member=member).select_related("tier"))
        since = metrics_window_start(tenant=tenant, assignments=assignments, now=now)
        changes = evaluate_member_tiers(
            tenant=tenant,
            member=member,
            metrics=daily_metrics(member=member, since=since),
            now=now,
            actor=actor,
            source=source,
            kinds=kinds,
            dry_run=dry_run,
            assignments=assignments,
        )
        if changes and not dry_run:
            sync_tier_benefits(tenant=tenant, member=member, actor=actor, now=now)
        return changes

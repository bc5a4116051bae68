"""Writes of the events context: member event ingestion and evaluation (the outbox is
``outbox.emit``).

Evaluation of a member's event runs in one transaction holding the member's row lock (so one member's
events are processed one at a time, different members' in parallel): points first (at the tiers held
before the event; ``points.services``), then the daily metrics (the points included), then the tier
engine for every active tier type, then the stored result. Benefits join this pipeline with their
issue; until then the result's benefits block is empty.
"""

import hashlib
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from benefits.campaigns import grant_campaign_benefits
from benefits.services import sync_tier_benefits
from config.errors import DomainError, IdempotencyConflict, Invalid
from config.tracing import current_request_id
from events.metrics import add_contributions, contributions, daily_metrics
from members.locks import lock_member
from members.models import Member, MemberEvent
from members.selectors import MemberNotFound
from points.selectors import point_specs
from points.services import award_event_points, reverse_refunded_points
from tenancy.models import Tenant
from tiers.engine import metrics_since
from tiers.models import MemberTierAssignment
from tiers.selectors import tier_type_specs
from tiers.services import evaluate_member_tiers

MAX_FUTURE = timedelta(minutes=5)
MAX_ATTEMPTS = 6


# --- member events --------------------------------------------------------------------------------
def body_hash(member_id: str, data: dict[str, Any]) -> str:
    """What makes two deliveries of one (source, event_id) the same event."""

    def plain(value: Any) -> str:  # one instant in any offset, one amount in any notation: one event
        return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)

    canonical = json.dumps({"member_id": member_id, **data}, sort_keys=True, default=plain, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _tenant_errors(tenant: Tenant, data: dict[str, Any], now: datetime) -> dict[str, list[str]]:
    """DOMAIN §7 rules that need the tenant: future times, the largest amount, the currency."""
    errors: dict[str, list[str]] = {}
    amount: Decimal | None = data.get("amount")
    if data["occurred_at"] > now + MAX_FUTURE:
        errors["occurred_at"] = ["Is more than 5 minutes in the future."]
    if amount is not None and amount > tenant.max_event_amount:
        errors["amount"] = [f"Exceeds the largest accepted amount ({tenant.max_event_amount})."]
    if data.get("currency") and data["currency"] != tenant.currency:
        errors["currency"] = [f"Must be the program currency, {tenant.currency}."]
    return errors


def _validate(tenant: Tenant, member: Member, data: dict[str, Any], now: datetime) -> MemberEvent | None:
    """DOMAIN §7 rules that need the tenant or stored events; returns the refunded original, if any."""
    errors = _tenant_errors(tenant, data, now)
    amount: Decimal | None = data.get("amount")
    original = None
    if data["type"] == "refund":
        original = (
            MemberEvent.objects.filter(tenant=tenant, source=data["source"], event_id=data["refund_of"], member=member)
            .exclude(type="refund")
            .first()
        )
        if original is None:
            errors["refund_of"] = ["No event of this member with this event_id under the same source."]
        elif not original.amount:
            errors["refund_of"] = ["The original event has no amount to refund."]
        elif amount is not None and amount > original.amount - original.refunded_amount:
            left = original.amount - original.refunded_amount
            errors["amount"] = [f"Exceeds what remains refundable on {original.event_id} ({left})."]
    if errors:
        raise Invalid(errors=errors)
    return original


def ingest_event(
    *, tenant: Tenant, member_id: str, data: dict[str, Any], actor: Any, asynchronous: bool = False
) -> tuple[MemberEvent, bool]:
    """Store a member event idempotently and (unless ``asynchronous``) evaluate it in the same
    transaction. Returns ``(event, replayed)``.

    Same (source, event_id) with the same body → the stored event (``replayed``); with another body →
    409 ``idempotency_conflict``. Unknown member → 404 ``member_not_found`` unless the tenant
    auto-enrolls. Invalid data → 422 with nothing stored. An event older than the tenant's
    ``max_event_age_days`` is stored as ``rejected`` and not evaluated. With ``asynchronous`` the event
    is stored as ``received`` and a task evaluates it after commit.
    """
    now = timezone.now()
    digest = body_hash(member_id, data)
    with transaction.atomic():
        member = Member.objects.select_for_update(of=("self",)).filter(tenant=tenant, external_id=member_id).first()
        if member is None:
            if not tenant.auto_enroll:
                raise MemberNotFound()
            from members.services import Registration, register_member

            member, _ = register_member(tenant=tenant, registration=Registration(external_id=member_id), actor=actor)
            member = lock_member(member)
        existing = MemberEvent.objects.filter(tenant=tenant, source=data["source"], event_id=data["event_id"]).first()
        if existing is not None:
            if existing.body_hash != digest:
                raise IdempotencyConflict("This source and event_id were used for a different event.")
            return existing, True
        original = _validate(tenant, member, data, now)
        too_old = data["occurred_at"] < now - timedelta(days=tenant.max_event_age_days)
        event = MemberEvent(
            tenant=tenant,
            member=member,
            body_hash=digest,
            refund_of=original,
            response_status=202 if asynchronous and not too_old else 201,
            correlation_id=current_request_id(),
            **{k: v for k, v in data.items() if k != "refund_of"},
        )
        if too_old:
            event.status = MemberEvent.Status.REJECTED
            event.result = _result(event, tier_changes=[], note=f"older than {tenant.max_event_age_days} days")
            event.processed_at = now
            event.save(force_insert=True)
        elif asynchronous:
            event.save(force_insert=True)
            enqueue_member(member.pk)
        else:
            process_event_locked(tenant=tenant, member=member, event=event)  # saves it, processed
    return event, False


def ingest_batch(*, tenant: Tenant, items: list[tuple[int, str, dict[str, Any]]], actor: Any) -> list[dict[str, Any]]:
    """``POST /events/batch``: store up to 1,000 validated events at once and enqueue one evaluation
    task per member. Returns an outcome per item (``accepted``, ``replayed`` or ``rejected`` with the
    problem code and errors).

    The common case takes a few queries for the whole batch: members and already-stored keys are read
    in bulk and the new events written with one insert. Refunds (they read and update their original)
    and unknown members of an auto-enrolling tenant take the one-by-one path of :func:`ingest_event`,
    as does the whole batch if a concurrent writer stored one of its keys first.
    """
    now = timezone.now()
    members = {m.external_id: m for m in Member.objects.filter(tenant=tenant, external_id__in={m for _, m, _ in items})}
    stored = {
        (e.source, e.event_id): e
        for e in MemberEvent.objects.filter(tenant=tenant, event_id__in=[d["event_id"] for _, _, d in items]).only(
            "id", "source", "event_id", "body_hash"
        )
    }
    outcomes: dict[int, dict[str, Any]] = {}
    fresh: list[tuple[int, MemberEvent]] = []
    slow: list[tuple[int, str, dict[str, Any]]] = []
    for index, member_id, data in items:
        key = (data["source"], data["event_id"])
        digest = body_hash(member_id, data)
        if data["type"] == "refund" or (member_id not in members and tenant.auto_enroll):
            slow.append((index, member_id, data))
            continue
        if member_id not in members:
            outcomes[index] = {"outcome": "rejected", "code": MemberNotFound.code, "errors": {}}
            continue
        prior = stored.get(key)
        if prior is not None:
            same = prior.body_hash == digest
            outcomes[index] = (
                {"outcome": "replayed", "event": prior}
                if same
                else {"outcome": "rejected", "code": IdempotencyConflict.code, "errors": {}}
            )
            continue
        errors = _tenant_errors(tenant, data, now)
        if errors:
            outcomes[index] = {"outcome": "rejected", "code": Invalid.code, "errors": errors}
            continue
        too_old = data["occurred_at"] < now - timedelta(days=tenant.max_event_age_days)
        event = MemberEvent(
            tenant=tenant,
            member=members[member_id],
            body_hash=digest,
            response_status=202,
            correlation_id=current_request_id(),
            status=MemberEvent.Status.REJECTED if too_old else MemberEvent.Status.RECEIVED,
            **{k: v for k, v in data.items() if k != "refund_of"},
        )
        if too_old:
            event.result = _result(event, tier_changes=[], note=f"older than {tenant.max_event_age_days} days")
            event.processed_at = now
        stored[key] = event
        fresh.append((index, event))
        outcomes[index] = {"outcome": "accepted", "event": event}
    try:
        with transaction.atomic():
            MemberEvent.objects.bulk_create([event for _, event in fresh])
            for member_pk in {e.member_id for _, e in fresh if e.status == MemberEvent.Status.RECEIVED}:
                enqueue_member(member_pk)
    except IntegrityError:  # a concurrent request stored one of these keys first: go one by one
        retry = {index for index, _ in fresh}
        slow += [item for item in items if item[0] in retry]
        for index in retry:
            outcomes.pop(index)
    for index, member_id, data in slow:
        try:
            event, replayed = ingest_event(
                tenant=tenant, member_id=member_id, data=data, actor=actor, asynchronous=True
            )
        except DomainError as exc:
            outcomes[index] = {"outcome": "rejected", "code": exc.code, "errors": exc.errors or {}}
        else:
            outcomes[index] = {"outcome": "replayed" if replayed else "accepted", "event": event}
    return [
        {
            k: v
            for k, v in {**outcomes[index], "id": getattr(outcomes[index].get("event"), "pk", None)}.items()
            if k != "event" and v is not None
        }
        for index, _, _ in items
    ]


def enqueue_member(member_pk: int) -> None:
    """After commit, a task evaluates the member's pending events (one task per member and commit).
    ``robust``: with the broker down the events are already stored ``received`` and the caller gets its
    202; the sweeper (``events.sweep_received``) enqueues them once the broker is back."""
    from events.tasks import evaluate_member_events

    headers = {"correlation_id": current_request_id()}
    transaction.on_commit(lambda: evaluate_member_events.apply_async((member_pk,), headers=headers), robust=True)


def process_event_locked(*, tenant: Tenant, member: Member, event: MemberEvent) -> MemberEvent:
    """Evaluate one event and save it (an insert for a new event). The caller holds the member's lock."""
    process_run_locked(tenant=tenant, member=member, events=[event])
    event.save()
    return event


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
                original = MemberEvent.objects.get(pk=event.refund_of_id)
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
            benefit_changes = sync_tier_benefits(tenant=tenant, member=member, actor=f"system:event:{events[-1].ref}")
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
        event.result = _result(
            event,
            tier_changes=tier_changes if last else [],
            note=note,
            points=points.get(id(event)),
            benefits=_merge(benefit_changes if last else {}, campaign.get(id(event), {})),
        )


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


def _result(
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


def replay_event(*, tenant: Tenant, event: MemberEvent, actor: Any) -> None:
    """An admin's replay of a failed or dead event: back to ``received`` and evaluated again."""
    from audit.services import record_audit

    with transaction.atomic():
        updated = MemberEvent.objects.filter(
            pk=event.pk, status__in=[MemberEvent.Status.FAILED, MemberEvent.Status.DEAD]
        ).update(status=MemberEvent.Status.RECEIVED, attempts=0)
        if updated:
            record_audit(
                tenant=tenant, actor=actor, action="event.replayed", target=event, member_id=event.member.external_id
            )
            enqueue_member(event.member_id)


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

"""Writes of the events context: member event ingestion and evaluation (the outbox is
``events.outbox``).

Evaluation of a member's event runs in one transaction holding the member's row lock (so one member's
events are processed one at a time, different members' in parallel): daily metrics, then the tier
engine for every active tier type, then the stored result. Points (and so the ``points`` metric) and
benefits join this pipeline with their issues; until then their blocks of the result are empty.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.errors import IdempotencyConflict, Invalid
from config.tracing import current_request_id
from events.metrics import add_contributions, contributions, daily_metrics
from events.models import MemberEvent
from members.locks import lock_member
from members.models import Member
from members.selectors import MemberNotFound
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


def _validate(tenant: Tenant, member: Member, data: dict[str, Any], now: datetime) -> MemberEvent | None:
    """DOMAIN §7 rules that need the tenant or stored events; returns the refunded original, if any."""
    errors: dict[str, list[str]] = {}
    amount: Decimal | None = data.get("amount")
    if data["occurred_at"] > now + MAX_FUTURE:
        errors["occurred_at"] = ["Is more than 5 minutes in the future."]
    if amount is not None and amount > tenant.max_event_amount:
        errors["amount"] = [f"Exceeds the largest accepted amount ({tenant.max_event_amount})."]
    if data.get("currency") and data["currency"] != tenant.currency:
        errors["currency"] = [f"Must be the program currency, {tenant.currency}."]
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
        member = Member.objects.filter(tenant=tenant, external_id=member_id).first()
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
        event = MemberEvent.objects.create(
            tenant=tenant,
            member=member,
            body_hash=digest,
            refund_of=original,
            status=MemberEvent.Status.REJECTED if too_old else MemberEvent.Status.RECEIVED,
            response_status=202 if asynchronous and not too_old else 201,
            correlation_id=current_request_id(),
            **{k: v for k, v in data.items() if k != "refund_of"},
        )
        if too_old:
            event.result = _result(event, tier_changes=[], note=f"older than {tenant.max_event_age_days} days")
            event.processed_at = now
            event.save(update_fields=["result", "processed_at"])
        elif not asynchronous:
            process_event_locked(tenant=tenant, member=member, event=event)
        else:
            from events.tasks import evaluate_event

            transaction.on_commit(lambda: evaluate_event.apply_async((event.pk,), headers=_headers()))
    return event, False


def _headers() -> dict[str, str]:
    return {"correlation_id": current_request_id()}


def process_event_locked(*, tenant: Tenant, member: Member, event: MemberEvent) -> MemberEvent:
    """Evaluate a stored event: metrics, tiers, result (caller holds the member's lock)."""
    now = timezone.now()
    tier_changes: list[dict[str, Any]] = []
    note = ""
    if member.status != Member.Status.ACTIVE:
        note = f"member {member.status}: stored, earns nothing, moves no tier"
    else:
        original = None
        if event.refund_of_id is not None:
            MemberEvent.objects.filter(pk=event.refund_of_id).update(
                refunded_amount=F("refunded_amount") + (event.amount or Decimal(0))
            )
            original = MemberEvent.objects.get(pk=event.refund_of_id)
        add_contributions(tenant=tenant, member=member, values=contributions(event, tenant, original=original))
        if member.last_event_at is None or event.occurred_at > member.last_event_at:
            Member.objects.filter(pk=member.pk).update(last_event_at=event.occurred_at)
            member.last_event_at = event.occurred_at
        event.counted = True
        tier_changes = evaluate_member_tiers(
            tenant=tenant,
            member=member,
            metrics=daily_metrics(member=member, since=metrics_window_start(tenant=tenant, member=member, now=now)),
            now=now,
            actor=f"system:event:{event.ref}",
            event_ref=event.ref,
        )
    event.status = MemberEvent.Status.PROCESSED
    event.processed_at = now
    event.last_error = ""
    event.result = _result(event, tier_changes=tier_changes, note=note)
    event.save(update_fields=["status", "processed_at", "last_error", "result", "counted"])
    return event


def metrics_window_start(*, tenant: Tenant, member: Member, now: datetime):  # type: ignore[no-untyped-def]
    """The earliest day any active tier type can still need (None = every day)."""
    tz = ZoneInfo(tenant.timezone)
    enrolled = dict(MemberTierAssignment.objects.filter(member=member).values_list("tier_type_id", "enrolled_at"))
    starts = [metrics_since(spec, now, tz, enrolled.get(spec.id, now)) for spec in tier_type_specs(tenant=tenant)]
    if not starts or any(s is None for s in starts):
        return None
    return min(s for s in starts if s is not None)


def _result(event: MemberEvent, *, tier_changes: list[dict[str, Any]], note: str = "") -> dict[str, Any]:
    """The event's result as API.md shapes it (points and benefits arrive with their issues)."""
    body: dict[str, Any] = {
        "id": event.pk,
        "event_id": event.event_id,
        "source": event.source,
        "status": event.status,
        "points": {"total": 0, "transactions": []},
        "tier_changes": tier_changes,
        "benefits": {"granted": [], "revoked": []},
    }
    if note:
        body["note"] = note
    return body


def process_event(*, event_id: int) -> MemberEvent:
    """Evaluate a stored event by id (the task body): idempotent, it re-reads the state under the lock."""
    with transaction.atomic():
        event = MemberEvent.objects.select_related("tenant", "member").get(pk=event_id)
        member = lock_member(event.member)
        event = MemberEvent.objects.select_for_update().get(pk=event_id)
        if event.status in (MemberEvent.Status.PROCESSED, MemberEvent.Status.REJECTED):
            return event
        tenant = Tenant.objects.get(pk=event.tenant_id)
        return process_event_locked(tenant=tenant, member=member, event=event)


def record_failure(*, event_id: int, error: BaseException, final: bool) -> None:
    """Mark an evaluation attempt failed (or dead after the last one), in its own transaction."""
    status = MemberEvent.Status.DEAD if final else MemberEvent.Status.FAILED
    MemberEvent.objects.filter(pk=event_id).exclude(status=MemberEvent.Status.PROCESSED).update(
        status=status, attempts=F("attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:2000]
    )


def replay_event(*, tenant: Tenant, event: MemberEvent, actor: Any) -> None:
    """An admin's replay of a failed or dead event: back to ``received`` and evaluated again."""
    from audit.services import record_audit
    from events.tasks import evaluate_event

    with transaction.atomic():
        updated = MemberEvent.objects.filter(
            pk=event.pk, status__in=[MemberEvent.Status.FAILED, MemberEvent.Status.DEAD]
        ).update(status=MemberEvent.Status.RECEIVED, attempts=0)
        if updated:
            record_audit(
                tenant=tenant, actor=actor, action="event.replayed", target=event, member_id=event.member.external_id
            )
            transaction.on_commit(lambda: evaluate_event.apply_async((event.pk,), headers=_headers()))


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
        metrics = daily_metrics(member=member, since=metrics_window_start(tenant=tenant, member=member, now=now))
        return evaluate_member_tiers(
            tenant=tenant,
            member=member,
            metrics=metrics,
            now=now,
            actor=actor,
            source=source,
            kinds=kinds,
            dry_run=dry_run,
        )

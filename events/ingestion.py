"""Ingestion of member events (DOMAIN §7): validated, stored idempotently on (source, event_id), then
evaluated in the same transaction (``events.evaluation``) or, asynchronously, by a task after commit
(``events.tasks``); and an admin's replay of a failed or dead event."""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record_audit
from config.db import insert_unless_taken
from config.errors import DomainError, IdempotencyConflict, Invalid
from config.tracing import current_request_id
from events.evaluation import event_result, process_event_locked
from events.registration import register_member
from events.tasks import evaluate_member_events
from members.errors import MemberErased, MemberNotFound
from members.locks import lock_member
from members.models import Member, MemberEvent
from members.services import Registration
from tenancy.models import Tenant

MAX_FUTURE = timedelta(minutes=5)


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
            member, _ = register_member(tenant=tenant, registration=Registration(external_id=member_id), actor=actor)
            member = lock_member(member)
        if member.status == Member.Status.ERASED:
            raise MemberErased("The member was erased; events for them are refused.")
        try:
            original = _validate(tenant, member, data, now)
        except Invalid:
            if (existing := _stored(tenant, data)) is not None:
                return _replayed(existing, digest)  # a replay answers as the original did, valid today or not
            raise
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
            event.result = event_result(event, tier_changes=[], note=f"older than {tenant.max_event_age_days} days")
            event.processed_at = now
        # The idempotency check is the insert itself: a stored (source, event_id) makes it a no-op.
        if not insert_unless_taken(event):
            return _replayed(_stored(tenant, data), digest)
        if asynchronous and not too_old:
            enqueue_member(member.pk)
        elif not too_old:
            process_event_locked(tenant=tenant, member=member, event=event)  # evaluates it, writes it back
    return event, False


def _stored(tenant: Tenant, data: dict[str, Any]) -> MemberEvent | None:
    return MemberEvent.objects.filter(tenant=tenant, source=data["source"], event_id=data["event_id"]).first()


def _replayed(existing: MemberEvent | None, digest: str) -> tuple[MemberEvent, bool]:
    """The stored event for a replay; 409 when its key was used with another body."""
    if existing is None or existing.body_hash != digest:  # (None: the row that took the key is gone)
        raise IdempotencyConflict("This source and event_id were used for a different event.")
    return existing, True


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
        if members[member_id].status == Member.Status.ERASED:
            outcomes[index] = {"outcome": "rejected", "code": MemberErased.code, "errors": {}}
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
            event.result = event_result(event, tier_changes=[], note=f"older than {tenant.max_event_age_days} days")
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
    headers = {"correlation_id": current_request_id()}
    transaction.on_commit(lambda: evaluate_member_events.apply_async((member_pk,), headers=headers), robust=True)


def replay_event(*, tenant: Tenant, event: MemberEvent, actor: Any) -> None:
    """An admin's replay of a failed or dead event: back to ``received`` and evaluated again."""
    with transaction.atomic():
        updated = MemberEvent.objects.filter(
            pk=event.pk, status__in=[MemberEvent.Status.FAILED, MemberEvent.Status.DEAD]
        ).update(status=MemberEvent.Status.RECEIVED, attempts=0)
        if updated:
            record_audit(
                tenant=tenant, actor=actor, action="event.replayed", target=event, member_id=event.member.external_id
            )
            enqueue_member(event.member_id)

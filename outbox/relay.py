"""The outbox relay (DOMAIN §8): at-least-once delivery of every outbox message to each destination,
with stable ids so receivers get exactly-once effects.

Two steps, each safe to run in any number of workers at once:

1. **Fan-out** — claim ``pending`` messages (``SELECT … FOR UPDATE SKIP LOCKED``) and create one
   :class:`~outbox.models.Delivery` per destination: each active webhook subscription wanting the
   type that existed when the message was written (a new subscriber gets what happens from then on;
   ``POST /event/publish`` re-announces older state), the broker (when ``BROKER_PUBLISH``), and
   each enabled service adapter that wants it (``outbox.registry``). The message becomes
   ``dispatched`` (``delivered`` at once if nobody wants it).
2. **Delivery** — claim due deliveries with ``SKIP LOCKED`` and lease them (``next_attempt_at`` moves
   ``OUTBOX_LEASE_SECONDS`` ahead and ``attempts`` grows, committed before any I/O), attempt each
   outside the transaction, then record the outcome: delivered; retried after a doubling backoff with
   jitter (``OUTBOX_RETRY_BASE`` … ``OUTBOX_RETRY_CAP``); ``dead`` after ``OUTBOX_MAX_ATTEMPTS`` or a
   final answer. A worker killed mid-attempt leaves a lease that simply expires, and the delivery is
   attempted again with the same id.

A message is ``delivered`` once all its deliveries are, ``dead`` once none is pending and one is dead.
Dead deliveries are replayable (``outbox.services.replay_message``), from the API and the admin.
"""

import logging
import random
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from outbox import broker, webhooks
from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from outbox.registry import adapter_for, known_adapter, service_adapters
from outbox.webhooks import Outcome

logger = logging.getLogger("privilege.outbox")
_rng = random.Random()  # noqa: S311 - jitter, not security


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: base × 2^(attempts-1), capped, ±20 % jitter."""
    jitter = (rng or _rng).uniform(0.8, 1.2)
    seconds = min(settings.OUTBOX_RETRY_CAP, settings.OUTBOX_RETRY_BASE * 2 ** max(0, attempts - 1))
    return timedelta(seconds=seconds * jitter)


def fan_out(*, limit: int = 500, now: datetime | None = None) -> int:
    """Step 1 for up to ``limit`` pending messages; returns how many were fanned out."""
    now = now or timezone.now()
    with transaction.atomic():
        messages = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now)
            .order_by("created_at", "sequence")[:limit]
        )
        if not messages:
            return 0
        subscriptions: dict[int, list[WebhookSubscription]] = {}
        for sub in WebhookSubscription.objects.filter(tenant_id__in={m.tenant_id for m in messages}, active=True):
            subscriptions.setdefault(sub.tenant_id, []).append(sub)
        adapters = service_adapters()
        deliveries: list[Delivery] = []
        wanted: set[Any] = set()
        for message in messages:
            targets = [
                Delivery(tenant_id=message.tenant_id, message=message, destination="webhook", subscription=sub)
                for sub in subscriptions.get(message.tenant_id, [])
                if sub.wants(message.type) and message.created_at >= sub.created_at
            ]
            if settings.BROKER_PUBLISH:
                targets.append(Delivery(tenant_id=message.tenant_id, message=message, destination="broker"))
            targets += [
                Delivery(tenant_id=message.tenant_id, message=message, destination=adapter.destination)
                for adapter in adapters
                if adapter.wants(message)
            ]
            for target in targets:
                target.next_attempt_at = now
            if targets:
                wanted.add(message.pk)
            deliveries += targets
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OutboxMessage.objects.filter(pk__in=wanted).update(status=OutboxMessage.Status.DISPATCHED)
        OutboxMessage.objects.filter(pk__in={m.pk for m in messages} - wanted).update(
            status=OutboxMessage.Status.DELIVERED, delivered_at=now
        )
    return len(messages)


def claim(*, limit: int = 100, now: datetime | None = None) -> list[Delivery]:
    """Lease up to ``limit`` due deliveries to this worker (committed before any attempt)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        Delivery.objects.filter(pk__in=ids).update(
            attempts=F("attempts") + 1, next_attempt_at=now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
        )
    return list(
        Delivery.objects.filter(pk__in=ids).select_related("message", "message__tenant", "subscription").order_by("id")
    )


def attempt(delivery: Delivery, now: datetime) -> Outcome:
    """One attempt at the delivery's destination (no transaction held)."""
    if delivery.destination == Delivery.Destination.WEBHOOK:
        subscription = delivery.subscription
        if subscription is None or not subscription.active:
            return Outcome("dead", error="the subscription is disabled or deleted")
        return webhooks.send(subscription, delivery.message, now)
    if delivery.destination == Delivery.Destination.BROKER:
        return broker.publish(delivery.message)
    adapter = adapter_for(delivery.destination)
    if adapter is None:
        return Outcome("dead", error=f"{delivery.destination} is not configured any more")
    return adapter.send(delivery, now)


def record(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    """Store an attempt's outcome, and tell a service adapter about a failure; the caller settles the
    message afterwards (:func:`settle`)."""
    fields: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    final = False
    if outcome.kind == "delivered":
        fields |= {"status": Delivery.Status.DELIVERED, "delivered_at": now, "last_error": ""}
    elif outcome.kind == "retry" and delivery.attempts < settings.OUTBOX_MAX_ATTEMPTS:
        fields |= {"next_attempt_at": now + backoff(delivery.attempts)}
    else:
        final = True
        fields |= {"status": Delivery.Status.DEAD}
        if outcome.kind == "retry":
            fields["last_error"] = f"gave up after {delivery.attempts} attempts; last: {outcome.error}"
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(**fields)
        if outcome.kind == "gone" and delivery.subscription_id is not None:
            WebhookSubscription.objects.filter(pk=delivery.subscription_id).update(
                active=False, disabled_reason=f"410 Gone at {now.isoformat(timespec='seconds')}"
            )
    if outcome.kind != "delivered":
        _report_failure(delivery, outcome, final)
        logger.warning(
            "delivery attempt failed",
            extra={
                "delivery": delivery.pk,
                "destination": delivery.destination,
                "attempt": delivery.attempts,
                "outcome": outcome.kind,
                "error": outcome.error[:200],
            },
        )


def _report_failure(delivery: Delivery, outcome: Outcome, final: bool) -> None:
    adapter = known_adapter(delivery.destination)
    if adapter is not None and adapter.on_failure is not None:
        adapter.on_failure(delivery, outcome, final)


def settle(message_ids: set[Any], now: datetime | None = None) -> None:
    """Messages whose deliveries are all finished become delivered, or dead if one is dead. Run after
    the deliveries' own commits, so concurrent workers finishing sibling deliveries cannot both miss."""
    now = now or timezone.now()
    statuses: dict[Any, set[str]] = {}
    for message_id, status in (
        Delivery.objects.filter(message_id__in=message_ids).values_list("message_id", "status").distinct()
    ):
        statuses.setdefault(message_id, set()).add(status)
    finished = {m: s for m, s in statuses.items() if Delivery.Status.PENDING not in s}
    dead = {m for m, s in finished.items() if Delivery.Status.DEAD in s}
    dispatched = OutboxMessage.objects.filter(status=OutboxMessage.Status.DISPATCHED)
    if dead:
        dispatched.filter(pk__in=dead).update(status=OutboxMessage.Status.DEAD, delivered_at=None)
    if delivered := set(finished) - dead:
        dispatched.filter(pk__in=delivered).update(status=OutboxMessage.Status.DELIVERED, delivered_at=now)


def deliver_due(*, limit: int = 100) -> int:
    """Step 2 for one batch; returns how many deliveries were attempted."""
    now = timezone.now()
    batch = claim(limit=limit, now=now)
    for delivery in batch:
        try:
            outcome = attempt(delivery, now)
        except Exception as exc:  # an adapter bug must not stop the batch; it is retried like a 5xx
            logger.exception("delivery attempt raised", extra={"delivery": delivery.pk})
            outcome = Outcome("retry", error=f"{type(exc).__name__}: {exc}"[:500])
        record(delivery, outcome, timezone.now())
    settle({d.message_id for d in batch})
    return len(batch)


def relay(*, budget_seconds: float = 30.0, batch: int = 100) -> int:
    """Fan out and deliver until nothing is due or the time budget is spent (the task's body)."""
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < budget_seconds:
        fanned = fan_out()
        attempted = deliver_due(limit=batch)
        done += attempted
        if not fanned and not attempted:
            break
    _settle_stragglers()
    return done


def _settle_stragglers() -> None:
    """Messages left ``dispatched`` by a worker that died between recording and settling."""
    cutoff = timezone.now() - timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    stale = (
        OutboxMessage.objects.filter(status=OutboxMessage.Status.DISPATCHED, created_at__lt=cutoff)
        .exclude(deliveries__status=Delivery.Status.PENDING)
        .values_list("pk", flat=True)[:200]
    )
    settle(set(stale))

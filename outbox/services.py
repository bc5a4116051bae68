"""Operator writes around the outbox (DOMAIN §8): webhook subscriptions (validated, secret generated
and rotated here, audited without secrets), messages published by hand, and deliveries retried or
replayed. Each service is one transaction with its audit entry; the relay (``outbox.relay``) is kicked
after the commit of anything that made a delivery due."""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import record_audit, snapshot
from config.errors import Conflict, Invalid, NotFound
from outbox.models import MESSAGE_TYPES, Delivery, OutboxMessage, WebhookSubscription
from outbox.registry import requeued
from outbox.relay import settle
from outbox.tasks import kick
from outbox.webhooks import UnsafeURL, check_url, new_secret
from tenancy.models import Tenant

SECRET_FIELDS = ("secret", "previous_secret")
MAX_GRACE_HOURS = 7 * 24


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"
    default_detail = "No webhook subscription with this id."


class NothingToReplay(Conflict):
    code = "nothing_to_replay"
    default_detail = "The message has no dead delivery to replay."


def public_snapshot(subscription: WebhookSubscription) -> dict[str, Any]:
    """The subscription's values for an audit entry: everything but the secrets."""
    return {k: v for k, v in snapshot(subscription).items() if k not in SECRET_FIELDS}


# --- subscriptions --------------------------------------------------------------------------------
def _event_type_errors(event_types: Any) -> list[str]:
    if not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types):
        return ["A list of message types (empty = every type)."]
    unknown = sorted({t for t in event_types if t not in MESSAGE_TYPES})
    if unknown:
        return [f"Unknown message types: {', '.join(unknown)}. Known: {', '.join(MESSAGE_TYPES)}."]
    return []


@transaction.atomic
def save_subscription(*, tenant: Tenant, subscription: WebhookSubscription, actor: Any) -> WebhookSubscription:
    """Create or update a webhook subscription of ``tenant``.

    The URL must pass the SSRF guard (``outbox.webhooks.check_url``) and ``event_types`` must be known
    message types (empty = every type); refusals are 422 field errors. A new subscription gets a fresh
    secret; an update keeps the stored secrets whatever the object carries (only :func:`rotate_secret`
    changes them). An active subscription has no ``disabled_reason``: re-enabling one that a 410 Gone
    disabled clears it. Audited (``webhooksubscription.created|updated``) without the secrets.
    """
    creating = subscription._state.adding
    try:  # first, outside any row lock: it may wait on DNS
        check_url(subscription.url)
        unsafe = ""
    except UnsafeURL as exc:
        unsafe = str(exc)
    before = None
    if creating:
        subscription.secret = new_secret()
        subscription.previous_secret = ""
        subscription.previous_secret_expires_at = None
    else:
        stored = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk, tenant=tenant).first()
        if stored is None:
            raise SubscriptionNotFound()
        before = public_snapshot(stored)
        for field in (*SECRET_FIELDS, "previous_secret_expires_at"):
            setattr(subscription, field, getattr(stored, field))
    subscription.tenant = tenant
    types = subscription.event_types
    if isinstance(types, list) and all(isinstance(t, str) for t in types):
        subscription.event_types = list(dict.fromkeys(types))  # duplicates dropped, order kept
    if subscription.active:
        subscription.disabled_reason = ""

    errors: dict[str, list[str]] = {}
    try:
        subscription.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors = {field: list(messages) for field, messages in exc.message_dict.items()}
    if unsafe and "url" not in errors:
        errors["url"] = [unsafe]
    if "event_types" not in errors and (type_errors := _event_type_errors(subscription.event_types)):
        errors["event_types"] = type_errors
    if errors:
        raise Invalid(errors=errors)

    subscription.save()
    record_audit(
        tenant=tenant,
        actor=actor,
        action=f"webhooksubscription.{'created' if creating else 'updated'}",
        target=subscription,
        before=before,
        after=public_snapshot(subscription),
    )
    return subscription


@transaction.atomic
def rotate_secret(
    *, tenant: Tenant, subscription: WebhookSubscription, actor: Any, grace_hours: int = 24
) -> WebhookSubscription:
    """A new signing secret; the current one becomes the previous secret until now + ``grace_hours``,
    and until then every delivery carries both signatures (``outbox.webhooks.signing_secrets``), so
    the receiver can switch keys at its own pace. A previous secret still in its grace period is
    dropped (only two are ever sent). Audited without the secrets."""
    if not 0 <= grace_hours <= MAX_GRACE_HOURS:
        raise Invalid(errors={"grace_hours": [f"From 0 to {MAX_GRACE_HOURS} hours."]})
    stored = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk, tenant=tenant).first()
    if stored is None:
        raise SubscriptionNotFound()
    before = public_snapshot(stored)
    stored.previous_secret = stored.secret
    stored.previous_secret_expires_at = timezone.now() + timedelta(hours=grace_hours)
    stored.secret = new_secret()
    stored.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    record_audit(
        tenant=tenant,
        actor=actor,
        action="webhooksubscription.secret_rotated",
        target=stored,
        before=before,
        after=public_snapshot(stored),
        reason=f"grace period {grace_hours} h",
    )
    return stored


@transaction.atomic
def delete_subscription(*, tenant: Tenant, subscription: WebhookSubscription, actor: Any) -> None:
    """Delete a subscription and its deliveries (their history goes with it). Messages that were
    waiting only for it are settled at once instead of by the relay's straggler sweep. Audited."""
    stored = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk, tenant=tenant).first()
    if stored is None:
        raise SubscriptionNotFound()
    waiting = set(
        Delivery.objects.filter(subscription=stored, status=Delivery.Status.PENDING).values_list(
            "message_id", flat=True
        )
    )
    before = public_snapshot(stored)
    target_id = str(stored.pk)
    stored.delete()
    settle(waiting)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="webhooksubscription.deleted",
        target_type=WebhookSubscription._meta.label_lower,
        target_id=target_id,
        before=before,
    )


# --- messages and deliveries ----------------------------------------------------------------------
def replay_message(*, tenant: Tenant, message: OutboxMessage, actor: Any) -> int:
    """An operator's replay: the message's dead deliveries are due again with fresh attempts (the same
    ``webhook-id``, so receivers that already applied it dedupe). Audited. Returns how many."""
    with transaction.atomic():
        dead = list(Delivery.objects.select_for_update().filter(message=message, status=Delivery.Status.DEAD))
        count = Delivery.objects.filter(pk__in=[d.pk for d in dead]).update(
            status=Delivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
        )
        requeued(dead)
        if count:
            OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxMessage.Status.DISPATCHED)
        record_audit(
            tenant=tenant,
            actor=actor,
            action="outbox.replayed",
            target=message,
            member_id=message.member_id,
            after={"deliveries": count},
        )
    transaction.on_commit(kick)
    return count


@transaction.atomic
def replay_dead_deliveries(*, tenant: Tenant, message: OutboxMessage, actor: Any) -> int:
    """``replay_message``, refused (409 ``nothing_to_replay``, nothing recorded) when
    the message has no dead delivery. Returns how many deliveries are due again."""
    if message.tenant_id != tenant.pk:
        raise NotFound()
    count = replay_message(tenant=tenant, message=message, actor=actor)
    if not count:
        raise NothingToReplay()  # rolls back the audit entry replay_message wrote
    return count


@transaction.atomic
def retry_deliveries(*, tenant: Tenant, deliveries: Iterable[Delivery], actor: Any) -> int:
    """Make the given pending or dead deliveries of ``tenant`` due now: a pending one keeps its
    attempts (its backoff is cut short), a dead one starts over (pending, attempts 0, its message
    back to ``dispatched``). Delivered ones and other tenants' are left alone. One audit entry per
    delivery retried (``delivery.retried``). Returns how many.

    A pending delivery leased by a worker at this moment may be attempted twice; receivers dedupe on
    ``webhook-id`` (at-least-once, DOMAIN §8)."""
    ids = [d.pk for d in deliveries]
    now = timezone.now()
    rows = list(
        Delivery.objects.select_for_update()
        .filter(pk__in=ids, tenant=tenant, status__in=[Delivery.Status.PENDING, Delivery.Status.DEAD])
        .select_related("message")
        .order_by("pk")
    )
    revived_dead = [d for d in rows if d.status == Delivery.Status.DEAD]
    for delivery in rows:
        before = {"status": delivery.status, "attempts": delivery.attempts, "next_attempt_at": delivery.next_attempt_at}
        fields = ["next_attempt_at"]
        delivery.next_attempt_at = now
        if delivery.status == Delivery.Status.DEAD:
            delivery.status, delivery.attempts, delivery.last_error = Delivery.Status.PENDING, 0, ""
            fields += ["status", "attempts", "last_error"]
        delivery.save(update_fields=fields)
        record_audit(
            tenant=tenant,
            actor=actor,
            action="delivery.retried",
            target=delivery,
            member_id=delivery.message.member_id,
            before=before,
            after={"status": delivery.status, "attempts": delivery.attempts, "next_attempt_at": now},
        )
    requeued(revived_dead)
    revived = {d.message_id for d in rows}
    OutboxMessage.objects.filter(pk__in=revived, status=OutboxMessage.Status.DEAD).update(
        status=OutboxMessage.Status.DISPATCHED
    )
    if rows:
        transaction.on_commit(kick)
    return len(rows)


@transaction.atomic
def requeue_messages(*, tenant: Tenant, messages: Iterable[OutboxMessage], actor: Any) -> int:
    """Make pending messages of ``tenant`` that sat past their schedule due now and kick the relay (a
    reconciliation repair: the relay was not running, or lost its task). One audit entry per message
    (``outbox.requeued``). Returns how many."""
    now = timezone.now()
    rows = list(
        OutboxMessage.objects.select_for_update()
        .filter(pk__in=[m.pk for m in messages], tenant=tenant, status=OutboxMessage.Status.PENDING)
        .order_by("created_at", "sequence")
    )
    for message in rows:
        record_audit(
            tenant=tenant,
            actor=actor,
            action="outbox.requeued",
            target=message,
            member_id=message.member_id,
            before={"next_attempt_at": message.next_attempt_at},
            after={"next_attempt_at": now},
        )
    OutboxMessage.objects.filter(pk__in=[m.pk for m in rows]).update(next_attempt_at=now)
    if rows:
        transaction.on_commit(kick)
    return len(rows)

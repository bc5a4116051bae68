"""Service adapters the relay delivers outbox messages to, besides webhooks and the broker: IAM, the
Point Service, the Notification service (DOMAIN §8). An adapter is enabled only when its base URL is
configured; with none configured (the embedded default) no delivery is created and the member-side
sync is recorded as ``skipped``.

Each attempt is one or more JSON POSTs over httpx with explicit timeouts (``INTEGRATION_CONNECT_TIMEOUT``
/ ``INTEGRATION_READ_TIMEOUT``), ``Authorization: Bearer <token>`` when a token is configured, and an
``Idempotency-Key`` that is the same on every retry, so a receiver that dedupes on it applies each
effect once. Answers are classified as for webhooks (:func:`outbox.webhooks.classify`): 2xx delivered;
timeouts, network errors, 429 and 5xx retried on the relay's schedule; any other answer is final.

* **IAM** (``IAM_BASE_URL``): ``member.created`` → ``POST /members/{member_id}/link`` (key: the message
  id); the answer's ``attributes`` are stored on the member (``members.services.link_member_to_iam``).
  Tier and benefit changes → ``POST /members/{member_id}/privileges`` with the message's envelope.
* **Point Service** (``POINT_SERVICE_URL``): each point transaction of a ``points.*`` message →
  ``POST /transactions`` (key: the transaction's id). Each acknowledged transaction becomes ``sent``
  at once (a retry skips it); when the delivery gives up, those not sent become ``failed``. Member
  state is never rolled back: the sync just retries, and a replay of the delivery retries it again.
* **Notification** (``NOTIFICATION_BASE_URL``): ``notification.requested`` → ``POST /notifications``
  (key: the notification's id); the provider's id and status are stored on the notification.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from events import notifications
from events.models import Notification
from members.models import Member
from members.selectors import member_tiers
from members.services import link_member_to_iam
from outbox.models import Delivery, OutboxMessage
from outbox.registry import Adapter
from outbox.webhooks import Outcome, classify
from points.models import PointTransaction

logger = logging.getLogger("privilege.integrations")

USER_AGENT = "privilege-service/1"
IAM_ACTOR = "system:iam"
IAM_TYPES = frozenset({"member.created", "tier.changed", "benefit.applied", "benefit.revoked", "benefit.expired"})
POINT_TYPES = frozenset({"points.applied", "points.reverted", "points.adjusted"})
NOTIFICATION_TYPES = frozenset({"notification.requested"})


# --- HTTP -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One POST's outcome, with the response when there was one."""

    outcome: Outcome
    response: httpx.Response | None = None

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object: ``{}`` for an empty body, None when it is anything else."""
        if self.response is None or not self.response.content.strip():
            return {}
        try:
            body = self.response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


def http_client() -> httpx.Client:
    timeout = httpx.Timeout(settings.INTEGRATION_READ_TIMEOUT, connect=settings.INTEGRATION_CONNECT_TIMEOUT)
    return httpx.Client(timeout=timeout, follow_redirects=False)


def endpoint(base_url: str, *segments: str) -> str:
    """``base_url`` joined with path segments, each percent-encoded (a member id cannot add a path)."""
    return "/".join([base_url.rstrip("/"), *(quote(segment, safe="") for segment in segments)])


def post(client: httpx.Client, url: str, *, token: str, idempotency_key: str, body: dict[str, Any]) -> Answer:
    """POST ``body`` as JSON and classify the answer; never raises for HTTP or network failures."""
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, "idempotency-key": idempotency_key}
    if token:
        headers["authorization"] = f"Bearer {token}"
    content = json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"))
    try:
        response = client.post(url, content=content, headers=headers)
    except httpx.TimeoutException as exc:
        return Answer(Outcome("retry", error=f"timeout: {type(exc).__name__}"))
    except httpx.HTTPError as exc:
        return Answer(Outcome("retry", error=f"network: {type(exc).__name__}: {exc}"[:500]))
    outcome = classify(response.status_code, response.text)
    if outcome.kind == "gone":  # a 410 disables only webhook subscriptions; from a service it is final
        outcome = Outcome("dead", outcome.status_code, outcome.error)
    return Answer(outcome, response)


# --- IAM ------------------------------------------------------------------------------------------
def iam_wants(message: OutboxMessage) -> bool:
    return message.type in IAM_TYPES and bool(message.member_id)


def send_to_iam(delivery: Delivery, now: datetime) -> Outcome:
    message = delivery.message
    if message.type == "member.created":
        return _link_member(message)
    url = endpoint(settings.IAM_BASE_URL, "members", message.member_id, "privileges")
    with http_client() as client:
        answer = post(client, url, token=settings.IAM_TOKEN, idempotency_key=str(message.pk), body=message.envelope())
    return answer.outcome


def _link_member(message: OutboxMessage) -> Outcome:
    member = Member.objects.filter(tenant_id=message.tenant_id, external_id=message.member_id).first()
    if member is None:
        return Outcome("dead", error="the member does not exist")
    if member.status == Member.Status.ERASED:
        return Outcome("dead", error="the member was erased before the IAM link; nothing was sent")
    url = endpoint(settings.IAM_BASE_URL, "members", member.external_id, "link")
    with http_client() as client:
        answer = post(
            client, url, token=settings.IAM_TOKEN, idempotency_key=str(message.pk), body=_link_body(message, member)
        )
    if answer.outcome.kind != "delivered":
        return answer.outcome
    reply = answer.json_object()
    attributes = None if reply is None else reply.get("attributes") or {}
    if not isinstance(attributes, dict):
        return Outcome("dead", answer.outcome.status_code, "the IAM answered without an attributes object")
    link_member_to_iam(tenant=message.tenant, member=member, attributes=attributes, actor=IAM_ACTOR)
    return answer.outcome


def _link_body(message: OutboxMessage, member: Any) -> dict[str, Any]:
    """The member's privilege data as it stands (the IAM owns identity: no name, email or mobile)."""
    return {
        "tenant": message.tenant.slug,
        "member_id": member.external_id,
        "message_id": str(message.pk),
        "member": {
            "status": member.status,
            "registered_at": member.registered_at,
            "tiers": [
                {"tier_type": a.tier_type.code, "tier": a.tier.code, "since": a.since, "valid_until": a.valid_until}
                for a in member_tiers(member=member)
            ],
        },
    }


# --- Point Service --------------------------------------------------------------------------------
def _transaction_ids(message: OutboxMessage) -> list[int]:
    rows = message.data.get("transactions") if isinstance(message.data, dict) else None
    return [row["id"] for row in rows or [] if isinstance(row, dict) and isinstance(row.get("id"), int)]


def point_service_wants(message: OutboxMessage) -> bool:
    return message.type in POINT_TYPES and bool(_transaction_ids(message))


def _message_transactions(message: OutboxMessage) -> Any:
    return PointTransaction.objects.filter(tenant_id=message.tenant_id, pk__in=_transaction_ids(message))


def send_points(delivery: Delivery, now: datetime) -> Outcome:
    """Each transaction not yet sent, in id order; stops at the first that is not acknowledged."""
    message = delivery.message
    unsent = (
        _message_transactions(message)
        .exclude(sync_status=PointTransaction.Sync.SENT)
        .select_related("member", "event")
        .order_by("pk")
    )
    outcome = Outcome("delivered")
    with http_client() as client:
        for tx in unsent:
            answer = post(
                client,
                endpoint(settings.POINT_SERVICE_URL, "transactions"),
                token=settings.POINT_SERVICE_TOKEN,
                idempotency_key=str(tx.pk),
                body=_transaction_body(message, tx),
            )
            outcome = answer.outcome
            if outcome.kind != "delivered":
                return outcome
            PointTransaction.objects.filter(pk=tx.pk).update(sync_status=PointTransaction.Sync.SENT)
    return outcome


def _transaction_body(message: OutboxMessage, tx: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx.pk,
        "tenant": message.tenant.slug,
        "member_id": tx.member.external_id,
        "points": tx.points,
        "kind": tx.kind,
        "occurred_at": tx.occurred_at,
        "event_id": tx.event.event_id if tx.event else None,
        "event_source": tx.event.source if tx.event else None,
        "reversal_of": tx.reversal_of_id,
        "message_id": str(message.pk),
        "message_type": message.type,
    }


def _points_failed(delivery: Delivery, outcome: Outcome, final: bool) -> None:
    if final:
        _message_transactions(delivery.message).exclude(sync_status=PointTransaction.Sync.SENT).update(
            sync_status=PointTransaction.Sync.FAILED
        )


# --- Notification service -------------------------------------------------------------------------
def notification_wants(message: OutboxMessage) -> bool:
    return message.type in NOTIFICATION_TYPES


def _notification_of(message: OutboxMessage) -> Notification | None:
    notification_id = message.data.get("notification_id") if isinstance(message.data, dict) else None
    if not notification_id:
        return None
    return Notification.objects.select_related("member").filter(tenant_id=message.tenant_id, pk=notification_id).first()


def send_notification(delivery: Delivery, now: datetime) -> Outcome:
    message = delivery.message
    notification = _notification_of(message)
    if notification is None:
        return Outcome("dead", error="the notification does not exist")
    if notification.status in (Notification.Status.SENT, Notification.Status.DELIVERED):
        return Outcome("delivered")
    member = notification.member
    if member.status == Member.Status.ERASED:
        return Outcome("dead", error="the member was erased; nothing was sent")
    notifications.count_attempt(notification)
    body = {
        "id": str(notification.pk),
        "tenant": message.tenant.slug,
        "member_id": member.external_id,
        "channel": notification.channel,
        "template": notification.template,
        "data": notification.data,
        "recipient": _recipient(notification.channel, member),
        "requested_at": notification.created_at,
    }
    url = endpoint(settings.NOTIFICATION_BASE_URL, "notifications")
    with http_client() as client:
        answer = post(client, url, token=settings.NOTIFICATION_TOKEN, idempotency_key=str(notification.pk), body=body)
    if answer.outcome.kind != "delivered":
        return answer.outcome
    reply = answer.json_object() or {}
    notifications.record_sent(
        notification=notification,
        external_id=str(reply.get("id") or ""),
        delivered=reply.get("status") == Notification.Status.DELIVERED,
    )
    return answer.outcome


def _recipient(channel: str, member: Any) -> dict[str, str]:
    field = notifications.RECIPIENT_FIELD.get(channel, "member_id")
    return {field: member.external_id if field == "member_id" else getattr(member, field)}


def _notification_failed(delivery: Delivery, outcome: Outcome, final: bool) -> None:
    notification = _notification_of(delivery.message)
    if notification is not None:
        notifications.record_failure(notification=notification, error=outcome.error, final=final)


def _points_requeued(delivery: Delivery) -> None:
    _message_transactions(delivery.message).filter(sync_status=PointTransaction.Sync.FAILED).update(
        sync_status=PointTransaction.Sync.PENDING
    )


def _notification_requeued(delivery: Delivery) -> None:
    Notification.objects.filter(
        pk__in=[n.pk for n in [_notification_of(delivery.message)] if n is not None],
        status=Notification.Status.FAILED,
    ).update(status=Notification.Status.REQUESTED, updated_at=timezone.now())


# --- the adapters (registered with the outbox by ``integrations.apps``) -----------------------------
def _iam_enabled() -> bool:
    return bool(settings.IAM_BASE_URL)


def _point_service_enabled() -> bool:
    return bool(settings.POINT_SERVICE_URL)


def _notification_enabled() -> bool:
    return bool(settings.NOTIFICATION_BASE_URL)


IAM = Adapter(Delivery.Destination.IAM, iam_wants, send_to_iam, enabled=_iam_enabled)
POINT_SERVICE = Adapter(
    Delivery.Destination.POINT_SERVICE,
    point_service_wants,
    send_points,
    _points_failed,
    _points_requeued,
    enabled=_point_service_enabled,
)
NOTIFICATION = Adapter(
    Delivery.Destination.NOTIFICATION,
    notification_wants,
    send_notification,
    _notification_failed,
    _notification_requeued,
    enabled=_notification_enabled,
)
ADAPTERS = (IAM, POINT_SERVICE, NOTIFICATION)

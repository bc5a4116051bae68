"""Webhooks per the Standard Webhooks spec (https://www.standardwebhooks.com): signing, the SSRF guard
on subscription URLs, and one delivery attempt.

* ``webhook-id`` is the outbox message id, the same on every retry, so a receiver that dedupes on it
  gets exactly one effect; ``webhook-timestamp`` is the attempt's time in Unix seconds;
  ``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the key the
  ``whsec_`` secret encodes, and during a rotation a second, space-separated signature with the
  previous secret.
* Answers: 2xx delivered; 410 Gone disables the subscription; 429, 5xx, timeouts and network errors are
  retried; any other status is final (dead). Redirects are not followed (a 3xx is final).
* URLs must pass the SSRF guard (``outbox.ssrf``): checked when a subscription is saved and again
  before every attempt, whose connection then goes to the address that check approved (pinned, so a
  DNS answer that changes in between cannot redirect it).
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from outbox.models import OutboxMessage, WebhookSubscription
from outbox.ssrf import UnsafeURL, approve, pinned_request

__all__ = ["UnsafeURL", "check_url", "classify", "new_secret", "send", "signature"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret


@dataclass(frozen=True)
class Outcome:
    """What one attempt at a destination came to: ``delivered``, ``retry``, ``dead`` or ``gone``."""

    kind: str
    status_code: int | None = None
    error: str = ""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signing_secrets(subscription: WebhookSubscription, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation grace period lasts."""
    out = [subscription.secret]
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret and (expires is None or now < expires):
        out.append(subscription.previous_secret)
    return out


def body_of(message: OutboxMessage) -> str:
    return json.dumps(message.envelope(), cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True)


def headers_for(subscription: WebhookSubscription, message: OutboxMessage, body: str, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    msg_id = str(message.pk)
    return {
        "content-type": "application/json",
        "user-agent": "privilege-service-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, msg_id, timestamp, body) for secret in signing_secrets(subscription, now)
        ),
    }


def check_url(url: str) -> None:
    """Raise :class:`UnsafeURL` unless ``url`` passes the SSRF guard (``outbox.ssrf.approve``)."""
    approve(url)


def send(subscription: WebhookSubscription, message: OutboxMessage, now: datetime) -> Outcome:
    """One attempt: POST the signed envelope and classify the answer."""
    try:
        target = approve(subscription.url)
    except UnsafeURL as exc:
        return Outcome("dead", error=f"unsafe URL: {exc}")
    body = body_of(message)
    try:
        with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT, follow_redirects=False) as client:
            response = pinned_request(
                client, "POST", target, content=body, headers=headers_for(subscription, message, body, now)
            )
    except httpx.TimeoutException as exc:
        return Outcome("retry", error=f"timeout: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return Outcome("retry", error=f"network: {type(exc).__name__}: {exc}"[:500])
    return classify(response.status_code, response.text)


def classify(status: int, text: str = "") -> Outcome:
    """An HTTP answer as an outcome (shared by the webhook and service adapters)."""
    if 200 <= status < 300:
        return Outcome("delivered", status)
    detail = f"HTTP {status}: {text[:300]}"
    if status == 410:
        return Outcome("gone", status, detail)
    if status == 429 or status >= 500:
        return Outcome("retry", status, detail)
    return Outcome("dead", status, detail)

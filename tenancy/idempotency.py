"""``Idempotency-Key`` for POST/PUT operations that have no natural key (API.md Conventions).

The first request with a key runs and its response (status and body) is stored for 24 hours. A repeat
with the same method, path and body gets the stored response with ``Idempotent-Replayed: true``; a
repeat with a different body is a 409 ``idempotency_conflict``; a repeat while the first is still
running is a 409 ``request_in_progress``. Failed requests (an error response) keep nothing, so the
caller can retry them.

While a request runs, its key is only *leased* (``IDEMPOTENCY_LEASE_SECONDS``, default 120): a process
killed mid-request (no chance to delete the record) leaves a lease that simply runs out, after which
the key can be used again, instead of a key wedged "in progress" for the whole 24-hour retention.
"""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import tenant_of
from config.errors import Conflict, IdempotencyConflict, Invalid
from tenancy.models import IdempotencyKey

RETENTION = timedelta(hours=24)
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class RequestInProgress(Conflict):
    code = "request_in_progress"
    default_detail = "A request with this Idempotency-Key is still being processed; retry shortly."


def lease_duration() -> timedelta:
    """How long a running request holds its key before another request may take it over."""
    return timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    """Run ``handler`` at most once per (tenant, Idempotency-Key); without the header, just run it."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handler()
    if not _VALID_KEY.match(key):
        raise Invalid(errors={"Idempotency-Key": ["1 to 200 printable ASCII characters, no spaces."]})
    tenant = tenant_of(request)
    fingerprint = _fingerprint(request)
    now = timezone.now()
    IdempotencyKey.objects.filter(tenant=tenant, key=key, expires_at__lte=now).delete()
    try:
        with transaction.atomic():
            record = IdempotencyKey.objects.create(
                tenant=tenant, key=key, fingerprint=fingerprint, expires_at=now + lease_duration()
            )
    except IntegrityError:
        record = IdempotencyKey.objects.get(tenant=tenant, key=key)
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict() from None
        if record.response_status is None:
            raise RequestInProgress() from None
        return Response(record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"})
    try:
        response = handler()
    except BaseException:
        record.delete()
        raise
    if response.status_code >= 400:
        record.delete()
        return response
    record.response_status, record.response_body = response.status_code, response.data
    record.expires_at = timezone.now() + RETENTION
    record.save(update_fields=["response_status", "response_body", "expires_at"])
    return response


def purge_expired_keys() -> int:
    """Delete stored responses past their retention; returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted

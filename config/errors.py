"""Domain errors and their RFC 9457 problem+json rendering.

Services raise a :class:`DomainError` subclass with a stable ``code``; the API layer
(``config.api.problem_exception_handler``) and the middleware (``config.middleware``) turn any error into
``application/problem+json``. Nothing here knows about HTTP frameworks beyond building the response.
"""

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from django.http import JsonResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://privilege.example/problems/"


class DomainError(Exception):
    """A failure the caller can act on. ``code`` is the stable machine string clients match on."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_detail: ClassVar[str] = "The request cannot be processed."
    headers: dict[str, str] | None = None  # response headers the error needs (e.g. Retry-After)

    def __init__(self, detail: str | None = None, *, errors: Mapping[str, Sequence[str]] | None = None):
        self.detail = detail or self.default_detail
        self.errors = dict(errors) if errors else None
        super().__init__(self.detail)


class NotFound(DomainError):
    status = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(DomainError):
    status = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class Invalid(DomainError):
    """Input that parses but breaks a rule; ``errors`` maps field names to messages."""

    status = 422
    code = "validation_error"
    default_detail = "The request has invalid fields."


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    default_detail = "This idempotency key was used with a different request body."


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    default_detail = "The request body is too large."


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    """Build an ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    response = JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response

"""Request tracing: the current request id (a context variable) and one-line JSON logging.

The request id comes from the caller's ``X-Request-ID`` header when it is well-formed, otherwise it is
generated; it is echoed on the response, attached to every log line of the request, and stored as the
``correlation_id`` of audit entries and outbox messages written while handling it. Celery tasks set it
from the message they process so a chain of work keeps one id.
"""

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str:
    """The id of the request (or task) being handled, or "" outside of one."""
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The caller's id if it is safe to log and store, otherwise a fresh one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return new_request_id()


def bind_request_id(request_id: str) -> None:
    """Set the id for the rest of the current context (a Celery task body)."""
    _request_id.set(request_id)


@contextmanager
def request_id_context(request_id: str) -> Iterator[str]:
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


# Attributes every LogRecord has; anything else passed with ``extra=`` is emitted as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    # Django attaches the request object (its repr has the query string, which may hold PII).
    "request",
    "server_time",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Callers pass structured fields with ``extra={...}``; never PII."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)

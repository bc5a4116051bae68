"""Celery entry points of the outbox: the relay task, and the kick that enqueues it after a commit."""

from contextvars import ContextVar

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from outbox.relay import relay

# The relay kicks of the HTTP request being handled, when in-process (``outbox.middleware``).
deferred_kicks: ContextVar[list[bool] | None] = ContextVar("outbox_deferred_kicks", default=None)


def defer_to_response_close() -> bool:
    """Called by an in-process kick: True when a request will run the relay after its response."""
    pending = deferred_kicks.get()
    if pending is None:
        return False
    pending.append(True)
    return True


@shared_task(name="outbox.deliver", acks_late=True, ignore_result=True)
def deliver_outbox() -> int:
    """Run the outbox relay (``outbox.relay.relay``): on commit of any message, and every few seconds
    from beat. Any number may run at once (rows are claimed with SKIP LOCKED). Returns attempts made."""
    return relay()


def kick() -> None:
    """Ask a worker to run the relay now (after a commit that wrote messages). Throttled to one task
    per second when a broker is in use; the beat schedule is the backstop. In-process (no broker),
    inside an HTTP request the relay runs after the response is sent (``outbox.middleware``), never in
    the request; elsewhere it runs at once."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if defer_to_response_close():
            return
    elif not cache.add("outbox:kick", 1, timeout=1):
        return
    deliver_outbox.delay()

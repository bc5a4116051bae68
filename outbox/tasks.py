"""Celery entry points of the outbox: the relay task, and the kick that enqueues it after a commit."""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from outbox.relay import relay


@shared_task(name="outbox.deliver", acks_late=True, ignore_result=True)
def deliver_outbox() -> int:
    """Run the outbox relay (``outbox.relay.relay``): on commit of any message, and every few seconds
    from beat. Any number may run at once (rows are claimed with SKIP LOCKED). Returns attempts made."""
    return relay()


def kick() -> None:
    """Ask a worker to run the relay now (after a commit that wrote messages). Throttled to one task
    per second when a broker is in use; the beat schedule is the backstop."""
    if not settings.CELERY_TASK_ALWAYS_EAGER and not cache.add("outbox:kick", 1, timeout=1):
        return
    deliver_outbox.delay()

"""Celery entry points of the events context: thin, id-only, idempotent; retry policy declared here."""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from config.db import advisory_lock
from config.metrics import EVENTS_PROCESSED, TASK_RETRIES
from events.models import MemberEvent
from events.services import MAX_ATTEMPTS, process_event, record_failure

logger = logging.getLogger("privilege.events")


@shared_task(name="events.evaluate_event", bind=True, acks_late=True, max_retries=MAX_ATTEMPTS - 1)
def evaluate_event(self, event_id: int) -> str:
    """Evaluate one stored event. Any failure is recorded on the event (``failed``) and retried with
    exponential backoff and jitter; after the last attempt the event is ``dead`` (replayable)."""
    try:
        event = process_event(event_id=event_id)
    except MemberEvent.DoesNotExist:
        logger.warning("event vanished before evaluation", extra={"event": event_id})
        return "missing"
    except Exception as exc:
        final = self.request.retries >= self.max_retries
        record_failure(event_id=event_id, error=exc, final=final)
        EVENTS_PROCESSED.labels("dead" if final else "failed").inc()
        logger.warning(
            "event evaluation failed", extra={"event": event_id, "final": final, "error": type(exc).__name__}
        )
        if final:
            return "dead"
        TASK_RETRIES.labels("events.evaluate_event").inc()
        countdown = min(2 ** (self.request.retries + 1), 300)
        raise self.retry(exc=exc, countdown=countdown) from exc
    EVENTS_PROCESSED.labels(event.status).inc()
    return event.status


@shared_task(name="events.sweep_received", acks_late=True)
def sweep_received(older_than_seconds: int = 60, limit: int = 5000) -> int:
    """PostgreSQL is the truth and the broker only a trigger: re-enqueue events still ``received`` (or
    ``failed`` and not retried) a while after arrival, e.g. after a broker restart lost their task.
    Evaluation is idempotent, so a task that was only late does no harm."""
    with advisory_lock("events.sweep_received") as acquired:
        if not acquired:
            return 0
        cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
        stuck = list(
            MemberEvent.objects.filter(
                status__in=[MemberEvent.Status.RECEIVED, MemberEvent.Status.FAILED], received_at__lt=cutoff
            )
            .order_by("received_at")
            .values_list("pk", flat=True)[:limit]
        )
        for pk in stuck:
            evaluate_event.delay(pk)
        if stuck:
            logger.info("re-enqueued stuck events", extra={"count": len(stuck)})
        return len(stuck)


@shared_task(name="tiers.review", acks_late=True)
def review_tiers() -> int:
    """Daily: the tier review of every tenant (see ``events.review``)."""
    from events.review import review_all

    reviews = review_all()
    return -1 if reviews is None else sum(r.changes for r in reviews)

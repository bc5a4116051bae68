"""Celery entry points of the events context: thin, id-only, idempotent; retry policy declared here."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.db import advisory_lock
from config.metrics import EVENTS_PROCESSED, TASK_RETRIES
from events.evaluation import MAX_ATTEMPTS, process_member_events, record_failure
from events.review import review_all
from members.models import MemberEvent

logger = logging.getLogger("privilege.events")


@shared_task(name="events.evaluate_member_events", bind=True, acks_late=True, max_retries=MAX_ATTEMPTS - 1)
def evaluate_member_events(self, member_id: int) -> int:
    """Evaluate one member's pending events as one run (``events.evaluation.process_member_events``).

    Any failure is recorded on the pending events (``failed``) and retried with exponential backoff;
    after the last attempt they are ``dead`` (visible in the admin, replayable). Returns how many events
    were processed (0 when another task got there first).
    """
    try:
        processed = process_member_events(member_id=member_id)
    except Exception as exc:
        final = self.request.retries >= self.max_retries
        record_failure(member_id=member_id, error=exc, final=final)
        EVENTS_PROCESSED.labels("dead" if final else "failed").inc()
        logger.warning(
            "event evaluation failed", extra={"member": member_id, "final": final, "error": type(exc).__name__}
        )
        if final:
            return 0
        TASK_RETRIES.labels("events.evaluate_member_events").inc()
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 300)) from exc
    EVENTS_PROCESSED.labels("processed").inc(processed)
    return processed


@shared_task(name="events.sweep_received", acks_late=True)
def sweep_received(older_than_seconds: float | None = None, limit: int = 5000) -> int:
    """PostgreSQL is the truth and the broker only a trigger: re-enqueue the members of events still
    ``received`` (or ``failed`` and not retried) a while after arrival, e.g. after a broker restart lost
    their task. Evaluation is idempotent, so a task that was only late does no harm. Returns how many
    members were re-enqueued."""
    with advisory_lock("events.sweep_received") as acquired:
        if not acquired:
            return 0
        if older_than_seconds is None:
            older_than_seconds = settings.EVENT_SWEEP_AFTER
        cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
        members = list(
            MemberEvent.objects.filter(
                status__in=[MemberEvent.Status.RECEIVED, MemberEvent.Status.FAILED], received_at__lt=cutoff
            )
            .values_list("member_id", flat=True)
            .distinct()[:limit]
        )
        for member_id in members:
            evaluate_member_events.delay(member_id)
        if members:
            logger.info("re-enqueued members with stuck events", extra={"count": len(members)})
        return len(members)


@shared_task(name="events.review_tiers", acks_late=True)
def review_tiers() -> int:
    """Periodic: the tier review of every tenant (see ``events.review``)."""
    reviews = review_all()
    return -1 if reviews is None else sum(r.changes for r in reviews)

"""Celery entry points of the benefits context: thin and idempotent; policy declared here."""

import logging

from celery import shared_task
from django.utils import timezone

from benefits.member_grants import expire_grants
from config.db import advisory_lock

logger = logging.getLogger("privilege.benefits")


@shared_task(name="benefits.expire_grants", acks_late=True)
def expire_due_grants(limit: int = 1000) -> int:
    """Periodic (every 5 minutes): close the grants past their ``expires_at``
    (``benefits.member_grants.expire_grants``). No retry policy: a failed or partial run changes nothing
    twice, and the next run picks up what is left. One run at a time (advisory lock); the service also
    skips members locked by another worker. Returns how many grants were closed (0 when another run
    holds the lock)."""
    with advisory_lock("benefits.expire_grants") as acquired:
        if not acquired:
            return 0
        closed = expire_grants(now=timezone.now(), limit=limit)
    if closed:
        logger.info("expired benefit grants", extra={"count": closed})
    return closed

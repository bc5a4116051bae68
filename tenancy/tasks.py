"""Celery entry points of the tenancy context."""

from celery import shared_task

from tenancy.idempotency import purge_expired_keys


@shared_task(name="tenancy.purge_idempotency_keys", acks_late=True)
def purge_idempotency_keys() -> int:
    """Hourly: drop Idempotency-Key records past their 24 h retention."""
    return purge_expired_keys()

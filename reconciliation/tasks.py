"""Celery entry points of reconciliation: thin, id-only, idempotent (a planned run is not planned again;
a finished chunk does nothing). They run on the ``maintenance`` queue (the default)."""

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from reconciliation.models import ReconciliationRun
from reconciliation.runs import fail, nightly_runs, plan, reconcile_chunk

logger = logging.getLogger("privilege.reconciliation")


def queue_run(run: ReconciliationRun) -> ReconciliationRun:
    """Hand a recorded run to a worker once its transaction commits."""
    transaction.on_commit(partial(reconcile.delay, run.pk))
    return run


@shared_task(name="reconciliation.reconcile", acks_late=True)
def reconcile(run_id: int) -> int:
    """Cut a run into chunks and queue one task per chunk (``reconciliation.runs.plan``); returns how many."""
    try:
        chunks = plan(run_id)
    except Exception as exc:
        logger.exception("reconciliation planning failed", extra={"run": run_id})
        fail(run_id, exc)
        return 0
    for pk in [chunk.pk for chunk in chunks]:
        transaction.on_commit(partial(reconcile_chunk_task.delay, pk))
    return len(chunks)


@shared_task(name="reconciliation.reconcile_chunk", acks_late=True)
def reconcile_chunk_task(chunk_id: int) -> bool:
    """Check (and repair) one chunk (``reconciliation.runs.reconcile_chunk``)."""
    try:
        return reconcile_chunk(chunk_id)
    except Exception:
        logger.exception("reconciliation chunk failed", extra={"chunk": chunk_id})
        return False


@shared_task(name="reconciliation.nightly")
def nightly() -> int:
    """Queue the nightly dry run of every tenant with members; returns how many were queued."""
    with transaction.atomic():
        runs = [queue_run(run) for run in nightly_runs()]
    return len(runs)

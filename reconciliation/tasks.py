"""Celery entry points of reconciliation: thin, id-only, idempotent (a finished run does nothing; a
running one resumes from its cursor). They run on the ``maintenance`` queue (the default)."""

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from reconciliation.models import ReconciliationRun
from reconciliation.runs import nightly_runs, process_run

logger = logging.getLogger("privilege.reconciliation")


def queue_run(run: ReconciliationRun) -> ReconciliationRun:
    """Hand a recorded run to a worker once its transaction commits."""
    transaction.on_commit(partial(reconcile.delay, run.pk))
    return run


@shared_task(name="reconciliation.reconcile", acks_late=True)
def reconcile(run_id: int) -> str:
    """Process one run to its end (``reconciliation.runs.process_run``); returns its status."""
    try:
        return process_run(run_id).status
    except Exception:
        logger.exception("reconciliation failed", extra={"run": run_id})
        return ReconciliationRun.Status.FAILED


@shared_task(name="reconciliation.nightly")
def nightly() -> int:
    """Queue the nightly dry run of every tenant with members; returns how many were queued."""
    with transaction.atomic():
        runs = [queue_run(run) for run in nightly_runs()]
    return len(runs)

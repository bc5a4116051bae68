"""Celery entry points of simulation: thin, id-only, idempotent (a finished chunk or a run that is no
longer running does nothing). They run on the ``maintenance`` queue (the default)."""

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from simulation.backtest import evaluate_chunk, fail, finish_chunk, plan
from simulation.models import SimulationChunk, SimulationRun

logger = logging.getLogger("privilege.simulation")


@shared_task(name="simulation.plan_run", acks_late=True)
def plan_run(run_id: int) -> int:
    """Cut a queued run into chunks and queue one task per chunk; returns how many."""
    run = SimulationRun.objects.select_related("tenant").get(pk=run_id)
    if run.status != SimulationRun.Status.QUEUED:
        return 0
    try:
        made = plan(run)
    except Exception as exc:
        fail(run_id, exc)
        raise
    for pk in [chunk.pk for chunk in made]:
        transaction.on_commit(partial(run_chunk.delay, pk))
    return len(made)


@shared_task(name="simulation.run_chunk", acks_late=True)
def run_chunk(chunk_id: int) -> int:
    """Evaluate one chunk of members (``simulation.backtest.evaluate_chunk``); returns members done."""
    chunk = SimulationChunk.objects.select_related("run", "run__tenant", "run__scenario").get(pk=chunk_id)
    if chunk.done or chunk.run.status != SimulationRun.Status.RUNNING:
        return 0
    try:
        share, affected = evaluate_chunk(chunk.run, chunk)
        finish_chunk(chunk, share, affected)
    except Exception as exc:
        logger.exception("simulation chunk failed", extra={"run": chunk.run_id, "chunk": chunk_id})
        fail(chunk.run_id, exc)
        return 0
    return int(share["members"])

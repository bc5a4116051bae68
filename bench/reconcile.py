"""Reconciliation speed (issue 14): ``python -m bench reconcile --members N [--events-per-member 20]``.

Loads the backtest benchmark's data (N members, about N × 20 processed events over the past year, the
two-rule hotel program; ``bench.backtest._load``, COPY) under its own tenant, then writes the stored
state the live pipeline would have left — each member's tier and one earn transaction per event —
from one replay (``bulk_create``), so that the tenant is clean. Then times a dry reconciliation of every
check (``reconciliation.runs.process_run``, in this process: a run is one sequential task) and reports
wall time, members/s, events/s, the process's peak RSS before and after, and a pgbench reference
measured in the same run.

Needs ``DATABASE_URL`` (PostgreSQL); the data stays (a second run with the same N reuses it).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.backtest import _django, _load, _peak_rss_mib, _workers
from bench.common import bench_keys, manage
from bench.ingest import _pgbench


def _seed_state(tenant_id: int) -> int:
    """Write the tiers and earn transactions a replay gives every member (once); → members written."""
    from points.models import PointTransaction
    from simulation.config import program
    from simulation.kernel import replay
    from simulation.loader import chunks, histories
    from tenancy.models import Tenant
    from tiers.models import MemberTierAssignment

    tenant = Tenant.objects.get(pk=tenant_id)
    if MemberTierAssignment.objects.filter(tenant=tenant).exists():
        return 0
    config, written = program(tenant), 0
    for first, last, _ in chunks(tenant, 2000):
        assignments, transactions = [], []
        for history in histories(tenant, first, last):
            outcome, _ = replay(history, config)
            occurred = {e.pk: e.occurred_at for e in history.events}
            for tier_type_id, snapshot in outcome.assignments.items():
                assignments.append(
                    MemberTierAssignment(
                        tenant=tenant,
                        member_id=history.pk,
                        tier_type_id=tier_type_id,
                        tier_id=snapshot.tier_id,
                        since=snapshot.since,
                        enrolled_at=snapshot.enrolled_at,
                    )
                )
            transactions += [
                PointTransaction(
                    tenant=tenant,
                    member_id=history.pk,
                    event_id=event_pk,
                    kind=PointTransaction.Kind.EARN,
                    points=points,
                    occurred_at=occurred[event_pk],
                    sync_status=PointTransaction.Sync.SKIPPED,
                )
                for event_pk, points in outcome.event_points.items()
                if points
            ]
            written += 1
        MemberTierAssignment.objects.bulk_create(assignments, batch_size=5000)
        PointTransaction.objects.bulk_create(transactions, batch_size=5000)
    return written


def _reconcile(env: dict[str, str], tenant_id: int, workers: int, chunk: int) -> dict:
    """A dry run of every check through ``workers`` real Celery worker processes (``-c 1`` each)."""
    from members.models import MemberEvent
    from reconciliation.models import Discrepancy, ReconciliationRun
    from reconciliation.runs import create_run
    from reconciliation.tasks import reconcile
    from tenancy.models import Tenant

    log = Path(tempfile.mkdtemp(prefix="bench-reconcile-")) / "workers.log"
    procs = _workers({**env, "RECONCILIATION_CHUNK_SIZE": str(chunk)}, workers, log)
    time.sleep(6)
    try:
        tenant = Tenant.objects.get(pk=tenant_id)
        started = time.monotonic()
        run = create_run(tenant=tenant, fix=False, checks=None, member_ids=None, actor="bench")
        reconcile.delay(run.pk)
        while True:
            run.refresh_from_db()
            if run.status not in ReconciliationRun.ACTIVE:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        rss = _peak_rss_mib(procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    if run.status != ReconciliationRun.Status.DONE:
        raise SystemExit(f"reconciliation {run.status}: {run.error} (worker log: {log})")
    events = MemberEvent.objects.filter(tenant=tenant, counted=True).count()
    return {
        "workers": workers,
        "seconds": round(elapsed, 1),
        "members": run.members_done,
        "events": events,
        "chunks": run.chunks_total,
        "members_per_s": round(run.members_done / elapsed),
        "events_per_s": round(events / elapsed),
        "discrepancies": Discrepancy.objects.filter(run=run).count(),
        "peak_worker_rss_mib": round(rss),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reconcile")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--events-per-member", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=500, help="members per chunk (one task and transaction each)")
    parser.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated")
    parser.add_argument("--no-pgbench", action="store_true")
    args = parser.parse_args(argv)
    env, _ = bench_keys()
    if not env.get("DATABASE_URL", "").startswith("postgres") or not env.get("REDIS_URL"):
        raise SystemExit("python -m bench reconcile needs DATABASE_URL pointing at PostgreSQL and REDIS_URL")
    manage(env, "migrate", "--noinput", capture=True)
    _django(env)
    started = time.monotonic()
    tenant_id, _ = _load(f"reconcile-{args.members}", args.members, args.events_per_member)
    seeded = _seed_state(tenant_id)
    print(f"load: {time.monotonic() - started:.1f} s (stored state written for {seeded} members)", flush=True)
    for workers in [int(w) for w in args.workers.split(",")]:
        print(json.dumps(_reconcile(env, tenant_id, workers, args.chunk)), flush=True)
    if not args.no_pgbench:
        print(f"pgbench reference: {_pgbench(env['DATABASE_URL'])}", flush=True)

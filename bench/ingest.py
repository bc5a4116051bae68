"""Ingest benchmark (issue 4): member events through the real pipeline, on PostgreSQL.

(a) synchronous: ``POST /member/{id}/event`` through gunicorn, 8 concurrent clients, each posting
    realistic hotel events (nights, stays, spend) for its own share of members; client-side p50/p99.
(b) asynchronous: ``POST /events/batch`` (1,000 events a request) answered 202, evaluated by real
    Celery worker processes; events/s from the first post until every event is processed.
(c) reference: ``pgbench -N`` against the same PostgreSQL server in the same run.

Needs DATABASE_URL (PostgreSQL) and REDIS_URL. Creates its own tenant (``bench-<time>``) with the demo
program's ladders, so runs never collide. Usage: ``python -m bench ingest [--members N] [--events N]``.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from bench.common import ROOT, bench_keys, gunicorn, manage, percentile


def _setup(env: dict[str, str], slug: str, members: int) -> None:
    code = (
        "from tenancy.models import Tenant\n"
        "from tiers.demo import seed_tiers\n"
        "from points.demo import seed_points\n"
        "from events.registration import register_member\n"
        "from members.services import Registration\n"
        f"t = Tenant.objects.create(slug='{slug}', name='Bench', timezone='Asia/Bangkok', max_event_age_days=400)\n"
        "seed_tiers(t)\n"
        "seed_points(t)\n"
        f"for i in range({members}):\n"
        f"    register_member(tenant=t, registration=Registration(external_id=f'm{{i}}'), actor='bench')\n"
    )
    manage(env, "shell", "-v", "0", "-c", code)


def _sync(port: int, token: str, events: list[tuple[str, dict]], clients: int) -> dict:
    """Each client owns the members whose number ≡ its index: the clients never wait on one member."""
    shares: list[list[tuple[str, dict]]] = [[] for _ in range(clients)]
    for member, body in events:
        shares[int(member[1:]) % clients].append((member, body))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(share: list[tuple[str, dict]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        mine, bad = [], []
        barrier.wait()
        for member, body in share:
            payload = json.dumps(body)
            started = time.perf_counter()
            conn.request("POST", f"/api/v1/member/{member}/event", payload, headers)
            response = conn.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            if response.status != 201:
                bad.append(str(response.status))
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "events": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "errors": len(errors),
    }


def _count_processed(env: dict[str, str], slug: str) -> tuple[int, int]:
    code = (
        "from members.models import MemberEvent as E\n"
        f"q = E.objects.filter(tenant__slug='{slug}', source='bench-async')\n"
        "print(q.filter(status='processed').count(), q.exclude(status__in=['processed','received']).count())"
    )
    out = manage(env, "shell", "-v", "0", "-c", code, capture=True).split()
    return int(out[0]), int(out[1])


def _async(port: int, token: str, env: dict[str, str], slug: str, events: list[tuple[str, dict]], workers: int) -> dict:
    logs = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    log = (logs / "workers.log").open("wb")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "events",
                "-c",
                "1",
                "-l",
                "WARNING",
                "-n",
                f"bench{i}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--prefetch-multiplier",
                "8",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]
    time.sleep(4)
    batches = [events[i : i + 1000] for i in range(0, len(events), 1000)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    accepted = 0
    for batch in batches:
        body = {"events": [{**b, "source": "bench-async", "member_id": m} for m, b in batch]}
        conn.request("POST", "/api/v1/events/batch", json.dumps(body), headers)
        response = conn.getresponse()
        accepted += json.loads(response.read())["accepted"]
    posted = time.perf_counter() - started
    failed = 0
    while True:
        processed, failed = _count_processed(env, slug)
        if processed + failed >= accepted:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)
    log.close()
    return {
        "events": accepted,
        "processed": processed,
        "failed": failed,
        "post_seconds": posted,
        "seconds": elapsed,
        "rate": processed / elapsed,
        "workers": workers,
    }


def _pgbench(database_url: str) -> str:
    url = urlparse(database_url)
    db = f"pgbench_{os.getpid()}"
    base = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    subprocess.run(["createdb", *base, db], check=True)
    try:
        subprocess.run(["pgbench", *base, "-i", "-q", "-s", "10", db], check=True, capture_output=True)
        out = subprocess.run(
            ["pgbench", *base, "-N", "-c", "8", "-j", "2", "-T", "15", db], check=True, capture_output=True, text=True
        ).stdout
        lines = [line for line in out.splitlines() if "tps" in line or "latency average" in line]
        return "; ".join(lines)
    finally:
        subprocess.run(["dropdb", *base, db], check=False)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--events", type=int, default=4000, help="events for each of (a) and (b)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--celery-workers", type=int, default=2)
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("bench ingest needs DATABASE_URL (PostgreSQL) and REDIS_URL")

    env, token_for = bench_keys()
    env.update(CELERY_TASK_ALWAYS_EAGER="0")
    slug = f"bench-{int(time.time())}"
    print(f"setup: tenant {slug}, {args.members} members ...", flush=True)
    _setup(env, slug, args.members)
    token = token_for(slug, "privilege:write")
    import django

    os.environ.update(env)
    django.setup()
    from events.demo import generate_events

    rng = random.Random(7)
    members = [f"m{i}" for i in range(args.members)]
    per_member = max(1, args.events // args.members)
    now = datetime.now(UTC)
    sync_events = generate_events(members, per_member, rng, now)
    async_events = generate_events(members, per_member, rng, now)

    with gunicorn(env, args.web_workers) as port:
        print(
            f"machine: {os.cpu_count()} cores; gunicorn workers {args.web_workers}; "
            f"{len(sync_events)} + {len(async_events)} events over {args.members} members",
            flush=True,
        )
        s = _sync(port, token, sync_events, args.clients)
        print(
            f"(a) sync  HTTP, {args.clients} clients: {s['rate']:7.1f} events/s  p50 {s['p50']:6.1f} ms  "
            f"p99 {s['p99']:6.1f} ms  errors {s['errors']}/{s['events']}",
            flush=True,
        )
        a = _async(port, token, env, slug, async_events, args.celery_workers)
        print(
            f"(b) async batch, {a['workers']} Celery workers: {a['rate']:7.1f} events/s sustained "
            f"({a['processed']} processed, {a['failed']} failed, posted in {a['post_seconds']:.1f} s, "
            f"all done in {a['seconds']:.1f} s)",
            flush=True,
        )
    print(f"(c) pgbench -N -c 8 -j 2 -T 15: {_pgbench(database_url)}", flush=True)

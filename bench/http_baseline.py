"""HTTP baseline: what one authenticated API round trip costs through gunicorn, before any domain work.

Drives 8 concurrent clients against ``POST /api/v1/audit`` (JWT verification, tenant lookup,
validation, one INSERT) and ``GET /api/v1/audit?page_size=20`` (a COUNT and a page), on the configured
database (``DATABASE_URL``; SQLite under a temporary DATA_DIR otherwise). Prints requests/s and
p50/p99 latency. Usage: ``python -m bench http_baseline [--clients N] [--requests N] [--workers N]``.
"""

import argparse
import os
import statistics
import threading
import time

import httpx

from bench.common import bench_keys, gunicorn, manage, percentile


def _drive(url: str, token: str, method: str, per_client: int, clients: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        nonlocal failures
        mine: list[float] = []
        bad = 0
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            barrier.wait()
            for i in range(per_client):
                started = time.perf_counter()
                if method == "POST":
                    ok = http.post(url, json={"action": "bench.write", "member_id": f"m-{i % 100}"}).status_code == 201
                else:
                    ok = http.get(url, params={"page_size": 20}).status_code == 200
                mine.append((time.perf_counter() - started) * 1000)
                bad += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            failures += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, failures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench http_baseline")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=250, help="per client and per endpoint")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)

    env, token_for = bench_keys()
    manage(env, "migrate", "-v0")
    manage(
        env,
        "shell",
        "-v",
        "0",
        "-c",
        "from tenancy.models import Tenant; Tenant.objects.get_or_create(slug='bench', defaults={'name': 'Bench'})",
    )
    token = token_for("bench", "privilege:audit")
    with gunicorn(env, args.workers) as port:
        db = env.get("DATABASE_URL", "").split("://")[0] or "sqlite"
        print(
            f"database={db} gunicorn_workers={args.workers} clients={args.clients} "
            f"requests_per_client={args.requests} cores={os.cpu_count()}"
        )
        for method in ("POST", "GET"):
            url = f"http://127.0.0.1:{port}/api/v1/audit"
            elapsed, lat, failures = _drive(url, token, method, args.requests, args.clients)
            print(
                f"{method:4} /api/v1/audit  {len(lat) / elapsed:8.1f} req/s  p50 {statistics.median(lat):6.1f} ms"
                f"  p99 {percentile(lat, 0.99):6.1f} ms  failures {failures}/{len(lat)}",
                flush=True,
            )

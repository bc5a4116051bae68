"""HTTP baseline: what one authenticated API round trip costs through gunicorn, before any domain work.

Starts gunicorn (4 sync workers) on a free loopback port against the configured database
(``DATABASE_URL``; SQLite under a temporary DATA_DIR otherwise), signs a token with a throwaway RSA
key, and drives 8 concurrent clients for a fixed number of requests each:
``POST /api/v1/audit`` (JWT verification, tenant lookup, validation, one INSERT) and
``GET /api/v1/audit?page_size=20`` (a COUNT and a page). Prints requests/s and p50/p99 latency.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent


def bench_keys() -> tuple[dict[str, str], Callable[[str, str], str]]:
    """An environment for a throwaway server (fresh DATA_DIR, a generated signing key trusted as kid
    ``bench``) and a function that signs tokens for it."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp / "bench.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="bench-only",  # noqa: S106 - a throwaway server
        DEBUG="0",
        DATA_DIR=str(tmp),
        JWT_PUBLIC_KEY_FILES=f"bench={tmp / 'bench.pem'}",
        JWT_ISSUER="bench",
        JWT_AUDIENCE="bench",
        LOG_LEVEL="WARNING",
    )

    def token_for(tenant: str, scope: str) -> str:
        claims = {
            "iss": "bench",
            "aud": "bench",
            "sub": "bench",
            "tenant": tenant,
            "scope": scope,
            "exp": int(time.time()) + 3600,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})

    return env, token_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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
                    r = http.post(url, json={"action": "bench.write", "member_id": f"m-{i % 100}"})
                    ok = r.status_code == 201
                else:
                    r = http.get(url, params={"page_size": 20})
                    ok = r.status_code == 200
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
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            python,
            "manage.py",
            "shell",
            "-v",
            "0",
            "-c",
            "from tenancy.models import Tenant; Tenant.objects.get_or_create(slug='bench', defaults={'name': 'Bench'})",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        token = token_for("bench", "privilege:audit")
        db = env.get("DATABASE_URL", "").split("://")[0] or "sqlite"
        print(
            f"database={db} gunicorn_workers={args.workers} clients={args.clients} "
            f"requests_per_client={args.requests} cores={os.cpu_count()}"
        )
        for method in ("POST", "GET"):
            elapsed, lat, failures = _drive(f"{base}/api/v1/audit", token, method, args.requests, args.clients)
            print(
                f"{method:4} /api/v1/audit  {len(lat) / elapsed:8.1f} req/s  p50 {statistics.median(lat):6.1f} ms"
                f"  p99 {_percentile(lat, 0.99):6.1f} ms  failures {failures}/{len(lat)}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)

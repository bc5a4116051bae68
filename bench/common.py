"""What the benchmarks share: a throwaway signing key and environment, a gunicorn server on a free
loopback port, and percentiles."""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=capture, text=True
    )
    return result.stdout if capture else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], workers: int) -> Iterator[int]:
    """A gunicorn server of the project; yields its port once /api/v1/health answers."""
    port = int(os.environ.get("BENCH_PORT") or 0) or free_port()  # a fixed port when the host assigns ranges
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(150):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/api/v1/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

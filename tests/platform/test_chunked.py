"""Chunked request bodies (config/chunked.py) through real servers: gunicorn and ``manage.py
runserver``, each started by this module on a loopback port, spoken to over a raw socket.

They need PostgreSQL (the servers share the test database, as the e2e worker does)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from members.models import Member
from tests.conftest import AUDIENCE, ISSUER, REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(8110, 8120)  # this session's loopback ports
LIMIT = 2 * 1024 * 1024

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8110-8119")


def _commands(port: int) -> dict[str, list[str]]:
    return {
        "gunicorn": [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        "runserver": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
    }


@pytest.fixture(scope="module", params=["gunicorn", "runserver"])
def server(request, django_db_setup, django_db_blocker, jwt_keys) -> Iterator[tuple[str, int]]:
    if connection.vendor != "postgresql":
        if REQUIRE_SERVICES:
            pytest.fail("REQUIRE_SERVICES=1 but the chunked-body servers need PostgreSQL")
        pytest.skip(f"needs PostgreSQL (DATABASE_URL points at {connection.vendor})")
    db = connection.settings_dict
    port = _free_port()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        DATABASE_POOL="0",
        DEBUG="0",
        SECRET_KEY="chunked-test-only",
        ALLOWED_HOSTS="127.0.0.1",
        JWT_PUBLIC_KEY_FILES=f"test-key={jwt_keys['pem_path']}",
        JWT_JWKS_FILE="",
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        API_MAX_BODY_BYTES=str(LIMIT),
        PYTHONUNBUFFERED="1",
    )
    log = open(ROOT / "var" / f"chunked-{request.param}.log", "ab")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        _commands(port)[request.param], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{request.param} exited with {proc.returncode}; see var/chunked-{request.param}.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"{request.param} did not listen within 60 s")
    yield request.param, port
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def _chunked(body: bytes, size: int) -> bytes:
    out = bytearray()
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out) + b"0\r\n\r\n"


def _exchange(port: int, token: str, framed: bytes, path: str = "/api/v1/member") -> tuple[int, dict, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + framed)
        sock.shutdown(socket.SHUT_WR)
        raw = bytearray()
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = bytes(raw).partition(b"\r\n")
    headers_text, _, payload = rest.partition(b"\r\n\r\n")
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.decode().partition(":") for line in headers_text.split(b"\r\n") if line)
    }
    if "chunked" in headers.get("transfer-encoding", ""):
        payload = _unchunk(payload)
    return int(status_line.split()[1]), headers, payload


def _unchunk(payload: bytes) -> bytes:
    out = bytearray()
    while payload:
        size_line, _, payload = payload.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += payload[:size]
        payload = payload[size + 2 :]
    return bytes(out)


def test_a_small_chunked_body_is_read(server, tenant, make_token):
    name, port = server
    body = json.dumps({"external_id": f"chunky-{name}", "attributes": {"via": "chunks"}}).encode()
    status, _, payload = _exchange(port, make_token(tenant.slug), _chunked(body, 7))
    assert status == 201, payload
    assert json.loads(payload)["external_id"] == f"chunky-{name}"
    assert Member.objects.get(tenant=tenant).attributes == {"via": "chunks"}


def test_a_chunked_body_past_the_limit_is_413_and_nothing_is_stored(server, tenant, make_token):
    _, port = server
    body = json.dumps({"external_id": "huge", "attributes": {"pad": "x" * (3 * 1024 * 1024)}}).encode()
    status, headers, payload = _exchange(port, make_token(tenant.slug), _chunked(body, 64 * 1024))
    assert status == 413, payload
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(payload)["code"] == "payload_too_large"
    assert Member.objects.count() == 0


def test_a_chunked_body_at_the_limit_is_read(server, tenant, make_token):
    _, port = server
    skeleton = json.dumps({"external_id": "full", "attributes": {"pad": ""}})
    body = json.dumps({"external_id": "full", "attributes": {"pad": "x" * (LIMIT - len(skeleton))}}).encode()
    assert len(body) == LIMIT
    status, _, payload = _exchange(port, make_token(tenant.slug), _chunked(body, 100_000))
    assert status == 201, payload[:300]
    assert Member.objects.filter(external_id="full").exists()


def test_malformed_chunks_are_400_and_nothing_is_stored(server, tenant, make_token):
    _, port = server
    framed = b'zz\r\n{"external_id": "bad"}\r\n0\r\n\r\n'
    status, headers, payload = _exchange(port, make_token(tenant.slug), framed)
    assert status == 400, payload
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(payload)["code"] == "malformed_request"
    assert Member.objects.count() == 0

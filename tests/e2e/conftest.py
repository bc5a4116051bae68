"""A real Celery worker process for end-to-end tests, on the test database and the Redis broker.

The worker is started once per module (after the test database exists) and stopped at its end, so
it never relays or evaluates behind the back of later, non-e2e tests that share the database. It
needs PostgreSQL and Redis: without them the e2e tests skip (or fail under ``REQUIRE_SERVICES=1``).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
QUEUES = "events,outbox,sync,maintenance"


def _services_missing() -> str | None:
    if connection.vendor != "postgresql":
        return f"needs PostgreSQL (DATABASE_URL points at {connection.vendor})"
    if not settings.REDIS_URL:
        return "needs Redis (REDIS_URL is not set)"
    return None


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen]:
    reason = _services_missing()
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but the e2e worker {reason}")
        pytest.skip(reason)
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_TASK_ALWAYS_EAGER="0",
        DJANGO_SETTINGS_MODULE="config.settings",
        WEBHOOK_ALLOW_PRIVATE="1",  # test subscribers listen on 127.0.0.1
    )
    log = open(ROOT / "var" / "e2e-worker.log", "ab")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            QUEUES,
            "-c",
            "2",
            "-l",
            "INFO",
            "-n",
            f"e2e-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Celery worker exited with {proc.returncode}; see var/e2e-worker.log")
        if app.control.ping(destination=[f"e2e-{os.getpid()}@{os.uname().nodename}"], timeout=1):
            break
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the Celery worker did not answer a ping within 60 s; see var/e2e-worker.log")
    proc.worker_name = f"e2e-{os.getpid()}@{os.uname().nodename}"  # type: ignore[attr-defined]
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()

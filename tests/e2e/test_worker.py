"""The deployed topology: a separate Celery worker process reached through the Redis broker."""

import pytest

from config.celery import app


@pytest.mark.postgres
@pytest.mark.redis
def test_worker_answers_and_consumes_every_queue(celery_worker_process):
    name = celery_worker_process.worker_name
    assert app.control.ping(destination=[name], timeout=5) == [{name: {"ok": "pong"}}]
    queues = app.control.inspect(destination=[name], timeout=5).active_queues()[name]
    assert sorted(q["name"] for q in queues) == ["events", "maintenance", "outbox", "sync"]
    stats = app.control.inspect(destination=[name], timeout=5).stats()[name]
    assert stats["prefetch_count"] == 2  # worker_prefetch_multiplier=1 times concurrency 2

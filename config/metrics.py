"""Prometheus metrics, served as text at ``/metrics``.

Counters are process-local; under gunicorn/celery with several processes set
``PROMETHEUS_MULTIPROC_DIR`` to a shared empty directory and the exposition aggregates all of them.
Gauges that describe the database (the outbox backlog) are computed at scrape time.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY
from prometheus_client.registry import Collector

REQUEST_LATENCY = Histogram(
    "privilege_http_request_duration_seconds",
    "HTTP request latency by route and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PROCESSED = Counter("privilege_events_processed_total", "Member events evaluated, by outcome.", ["outcome"])
TASK_RETRIES = Counter("privilege_task_retries_total", "Celery task retries, by task.", ["task"])


# Collectors computed from the database at scrape time, added at start-up by the apps that own the
# tables (``outbox.apps``): config, at the bottom of the house, knows none of them.
_SCRAPE_TIME: list[Collector] = []


def add_scrape_time_collector(collector: Collector) -> None:
    if collector not in _SCRAPE_TIME:
        _SCRAPE_TIME.append(collector)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    local = CollectorRegistry()
    for collector in _SCRAPE_TIME:
        local.register(collector)
    return body + generate_latest(local), CONTENT_TYPE_LATEST

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
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

REQUEST_LATENCY = Histogram(
    "privilege_http_request_duration_seconds",
    "HTTP request latency by route and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PROCESSED = Counter("privilege_events_processed_total", "Member events evaluated, by outcome.", ["outcome"])
TASK_RETRIES = Counter("privilege_task_retries_total", "Celery task retries, by task.", ["task"])


class OutboxBacklogCollector(Collector):
    """Outbox messages not yet delivered, per status, and deliveries not delivered, per destination and
    status (a dead webhook or a failing service shows here), read from the database at scrape time."""

    def collect(self):
        from django.db.models import Count

        from events.models import Delivery, OutboxMessage

        gauge = GaugeMetricFamily(
            "privilege_outbox_backlog", "Outbox messages awaiting delivery, by status.", labels=["status"]
        )
        rows = (
            OutboxMessage.objects.exclude(status=OutboxMessage.Status.DELIVERED)
            .values("status")
            .annotate(n=Count("id"))
        )
        for row in rows:
            gauge.add_metric([row["status"]], row["n"])
        yield gauge
        deliveries = GaugeMetricFamily(
            "privilege_delivery_backlog",
            "Deliveries not delivered (pending or dead), by destination and status.",
            labels=["destination", "status"],
        )
        for row in (
            Delivery.objects.exclude(status=Delivery.Status.DELIVERED)
            .values("destination", "status")
            .annotate(n=Count("id"))
        ):
            deliveries.add_metric([row["destination"], row["status"]], row["n"])
        yield deliveries


_BACKLOG = OutboxBacklogCollector()


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    local = CollectorRegistry()
    local.register(_BACKLOG)
    return body + generate_latest(local), CONTENT_TYPE_LATEST

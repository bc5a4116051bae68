"""The outbox backlog as Prometheus gauges, read from the database at scrape time (``/metrics``)."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from outbox.models import Delivery, OutboxMessage


class OutboxBacklogCollector(Collector):
    """Outbox messages not yet delivered, per status, and deliveries not delivered, per destination and
    status (a dead webhook or a failing service shows here), read from the database at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
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

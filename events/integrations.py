"""Service adapters the relay delivers outbox messages to, besides webhooks and the broker: IAM, the
Point Service, the Notification service (DOMAIN §8). An adapter is enabled only when its base URL is
configured; with none configured (the embedded default) no delivery is created and the member-side
sync is recorded as ``skipped``."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from events.models import Delivery, OutboxMessage
from events.webhooks import Outcome


@dataclass(frozen=True)
class Adapter:
    destination: str  # a Delivery.Destination value
    wants: Callable[[OutboxMessage], bool]
    send: Callable[[Delivery, datetime], Outcome]


def service_adapters() -> list[Adapter]:
    """The adapters enabled by settings (none yet: IAM, Point Service and Notification land next)."""
    return []


def adapter_for(destination: str) -> Adapter | None:
    return next((a for a in service_adapters() if a.destination == destination), None)

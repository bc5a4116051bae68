"""The registry of service adapters (destinations besides webhooks and the broker). The outbox knows no
adapter: each one is registered at start-up by the app that owns it (``integrations.apps``), and the
relay asks the registry which ones want a message, how to send a delivery, and whom to tell when a
delivery fails or an operator makes a dead one due again."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from outbox.models import Delivery, OutboxMessage
from outbox.webhooks import Outcome


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Adapter:
    """``send`` makes one attempt; the relay calls ``on_failure(delivery, outcome, final)`` after each
    failed one (``final``: the delivery is dead), so member-side state can say ``failed``, and
    ``on_requeue(delivery)`` when an operator makes a dead delivery due again (back to pending).
    ``enabled`` says whether the adapter is configured now (e.g. its base URL is set): a disabled
    adapter gets no new delivery but still hears about the ones it already has."""

    destination: str  # a Delivery.Destination value
    wants: Callable[[OutboxMessage], bool]
    send: Callable[[Delivery, datetime], Outcome]
    on_failure: Callable[[Delivery, Outcome, bool], None] | None = None
    on_requeue: Callable[[Delivery], None] | None = None
    enabled: Callable[[], bool] = _always


_registry: dict[str, Adapter] = {}


def register(adapter: Adapter) -> None:
    """Add (or replace) the adapter of ``adapter.destination``; called from an ``AppConfig.ready``."""
    _registry[adapter.destination] = adapter


def service_adapters() -> list[Adapter]:
    """The registered adapters that are enabled now, in registration order."""
    return [adapter for adapter in _registry.values() if adapter.enabled()]


def adapter_for(destination: str) -> Adapter | None:
    """The enabled adapter of a destination (None when unconfigured)."""
    return next((a for a in service_adapters() if a.destination == destination), None)


def known_adapter(destination: str) -> Adapter | None:
    """The adapter of a destination, enabled or not: whom to tell that its delivery failed or is due
    again (a delivery fanned out before its service was unconfigured still updates member-side state)."""
    return adapter_for(destination) or _registry.get(destination)


def requeued(deliveries: Iterable[Delivery]) -> None:
    """Dead deliveries made due again by an operator: their adapters put member-side state back to
    pending."""
    for delivery in deliveries:
        adapter = known_adapter(delivery.destination)
        if adapter is not None and adapter.on_requeue is not None:
            adapter.on_requeue(delivery)

"""Publication of outbox messages to the message broker (DOMAIN §8): a durable topic exchange
(``BROKER_EXCHANGE``, default ``privilege.events``), routing key = message type, body = the envelope,
``message_id`` = the outbox id (receivers dedupe on it). Internal services bind their own queues,
e.g. ``tier.*`` or ``#``. Uses the Celery app's broker connection pool (kombu)."""

from django.conf import settings
from kombu import Exchange

from config.celery import app
from outbox.models import OutboxMessage
from outbox.webhooks import Outcome


def exchange() -> Exchange:
    return Exchange(settings.BROKER_EXCHANGE, type="topic", durable=True)


def publish(message: OutboxMessage) -> Outcome:
    try:
        with app.producer_or_acquire() as producer:
            producer.publish(
                message.envelope(),
                exchange=exchange(),
                routing_key=message.type,
                declare=[exchange()],
                serializer="json",
                message_id=str(message.pk),
                delivery_mode=2,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
    except Exception as exc:  # noqa: BLE001 - kombu raises transport-specific errors; each is retried
        return Outcome("retry", error=f"broker: {type(exc).__name__}: {exc}"[:500])
    return Outcome("delivered")

"""Real HTTP peers for the integration tests (pytest-httpserver): a service that answers from a script,
records every request, and applies each ``Idempotency-Key`` once, as a deduping receiver does."""

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone
from werkzeug import Request, Response

from outbox import relay
from outbox.models import Delivery, OutboxMessage


class Peer:
    """Answers the scripted statuses in turn (``"sleep"``: a 200 that takes 1 s, longer than the
    tests' read timeout, so the caller sees a timeout although the effect is applied), then 200 with
    ``reply`` (a dict, or a function of the request body)."""

    def __init__(self, script: list = (), reply: dict | Callable[[dict], dict] | None = None):
        self.script = list(script)
        self.reply = reply if reply is not None else {}
        self.requests: list[dict[str, Any]] = []
        self.effects: list[str] = []  # one entry per key applied: a dedupe on Idempotency-Key
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data(as_text=True))
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            self.requests.append(
                {
                    "path": request.path,
                    "key": key,
                    "auth": request.headers.get("Authorization"),
                    "content_type": request.headers.get("Content-Type"),
                    "body": body,
                }
            )
            step = self.script.pop(0) if self.script else 200
        if step == "sleep":
            time.sleep(1.0)
            step = 200
        if not 200 <= step < 300:
            return Response(json.dumps({"error": "scripted"}), status=step, content_type="application/json")
        with self.lock:
            if key not in self.effects:
                self.effects.append(key)
        reply = self.reply(body) if callable(self.reply) else self.reply
        return Response(json.dumps(reply), status=step, content_type="application/json")

    @property
    def keys(self) -> list[str]:
        return [r["key"] for r in self.requests]


def relay_until_settled(rounds: int = 30) -> None:
    """Relay rounds with every retry made due at once (instead of waiting out the backoff)."""
    for _ in range(rounds):
        relay.fan_out()
        relay.deliver_due()
        Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        if not Delivery.objects.filter(status="pending").exists() and not OutboxMessage.objects.filter(
            status="pending"
        ):
            return


def relay_once() -> None:
    """One fan-out and one delivery round, then make any retry due."""
    relay.fan_out()
    relay.deliver_due()
    Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now() - timedelta(seconds=1))

"""The outbox relay (events/relay.py) against real HTTP receivers (pytest-httpserver), every signature
checked by an independent verifier (the ``standardwebhooks`` package)."""

import json
import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook
from werkzeug import Request, Response

from outbox import relay
from outbox import services as outbox_services
from outbox.emit import emit
from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from outbox.webhooks import UnsafeURL, check_url, new_secret
from tests.concurrency import race
from tests.events.peers import relay_until_settled
from tests.factories import TenantFactory


@pytest.fixture(autouse=True)
def _private_urls_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.BROKER_PUBLISH = False
    settings.WEBHOOK_TIMEOUT = 0.5


class Receiver:
    """A subscriber: answers from a script (then 200), verifies every signature, and applies each
    message once (dedupe on ``webhook-id``)."""

    def __init__(self, secrets: list[str], script: list = ()):
        self.verifiers = [Webhook(s) for s in secrets]
        self.script = list(script)
        self.requests: list[dict] = []
        self.applied: dict[str, dict] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        headers = dict(request.headers)
        for verifier in self.verifiers:  # raises WebhookVerificationError on a bad signature
            verifier.verify(body, headers)
        with self.lock:
            self.requests.append({"id": headers["Webhook-Id"], "signature": headers["Webhook-Signature"]})
            step = self.script.pop(0) if self.script else 200
        if step == "sleep":
            time.sleep(1.0)
            step = 200
        if 200 <= step < 300:
            with self.lock:
                self.applied.setdefault(headers["Webhook-Id"], json.loads(body))
        return Response("ok" if step < 300 else "no", status=step)


def _subscribe(tenant, httpserver, receiver=None, **fields) -> WebhookSubscription:
    sub = WebhookSubscription.objects.create(
        tenant=tenant, url=httpserver.url_for("/hook"), secret=new_secret(), **fields
    )
    if receiver is not None:
        httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    return sub


def _emit(tenant, member_id="ann", type_="tier.changed", **data) -> OutboxMessage:
    with transaction.atomic():
        return emit(tenant=tenant, type=type_, member_id=member_id, data=data)


@pytest.mark.django_db
def test_a_message_is_posted_signed_with_its_envelope(tenant, httpserver):
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    message = _emit(tenant, tier="gold")
    relay_until_settled()
    assert [r["id"] for r in receiver.requests] == [str(message.pk)]
    assert receiver.applied[str(message.pk)] == message.envelope() | {"occurred_at": message.occurred_at.isoformat()}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.django_db
def test_three_500s_then_success_delivers_once_in_effect(tenant, httpserver):
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret], script=[500, 500, 500])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    message = _emit(tenant)
    relay_until_settled()
    assert [r["id"] for r in receiver.requests] == [str(message.pk)] * 4  # the same id on every retry
    assert list(receiver.applied) == [str(message.pk)]  # deduped by webhook-id: one effect
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 4)


@pytest.mark.django_db
def test_a_400_is_dead_without_retries(tenant, httpserver):
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret], script=[400])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    message = _emit(tenant)
    relay_until_settled()
    assert len(receiver.requests) == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 1, 400)
    message.refresh_from_db()
    assert message.status == "dead"


@pytest.mark.django_db
def test_a_timeout_is_retried(tenant, httpserver):
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret], script=["sleep"])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    _emit(tenant)
    relay.fan_out()
    relay.deliver_due()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "timeout: ReadTimeout")
    assert delivery.next_attempt_at > timezone.now()  # backing off
    relay_until_settled()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


@pytest.mark.django_db
def test_410_disables_the_subscription_and_later_messages_skip_it(tenant, httpserver):
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret], script=[410])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    _emit(tenant)
    relay_until_settled()
    sub.refresh_from_db()
    assert (sub.active, sub.disabled_reason.startswith("410 Gone")) == (False, True)
    later = _emit(tenant)
    relay_until_settled()
    later.refresh_from_db()
    assert (later.status, later.deliveries.count(), len(receiver.requests)) == ("delivered", 0, 1)


@pytest.mark.django_db
def test_only_wanted_types_and_only_the_tenants_subscriptions(tenant, other_tenant, httpserver):
    _subscribe(tenant, httpserver, event_types=["benefit.applied"])
    _subscribe(other_tenant, httpserver)
    _emit(tenant, type_="tier.changed")
    wanted = _emit(tenant, type_="benefit.applied")
    relay.fan_out()
    assert list(Delivery.objects.values_list("message_id", "tenant_id")) == [(wanted.pk, tenant.pk)]


@pytest.mark.django_db
def test_a_new_subscription_gets_what_happens_from_then_on(tenant, httpserver):
    earlier = _emit(tenant)
    sub = _subscribe(tenant, httpserver)
    OutboxMessage.objects.filter(pk=earlier.pk).update(created_at=sub.created_at - timedelta(microseconds=1))
    later = _emit(tenant)
    relay.fan_out()
    assert list(Delivery.objects.values_list("message_id", flat=True)) == [later.pk]
    earlier.refresh_from_db()
    assert earlier.status == "delivered"  # nobody wanted it


@pytest.mark.django_db
def test_retries_give_up_after_the_schedule_and_a_replay_delivers(tenant, httpserver, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret], script=[503, 503, 503])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    message = _emit(tenant)
    relay_until_settled()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("dead", 3)
    assert delivery.last_error.startswith("gave up after 3 attempts; last: HTTP 503")
    assert outbox_services.replay_message(tenant=tenant, message=message, actor="ops") == 1
    relay_until_settled()
    delivery.refresh_from_db()
    message.refresh_from_db()
    assert (delivery.status, message.status, len(receiver.requests)) == ("delivered", "delivered", 4)
    assert list(receiver.applied) == [str(message.pk)]


@pytest.mark.django_db
def test_rotation_signs_with_both_secrets_until_the_old_one_expires(tenant, httpserver):
    old, new = new_secret(), new_secret()
    sub = _subscribe(
        tenant, httpserver, previous_secret=old, previous_secret_expires_at=timezone.now() + timedelta(hours=1)
    )
    sub.secret = new
    sub.save()
    receiver = Receiver([new, old])  # each verifier alone must accept the request
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    _emit(tenant)
    relay_until_settled()
    assert len(receiver.requests[0]["signature"].split(" ")) == 2
    WebhookSubscription.objects.filter(pk=sub.pk).update(previous_secret_expires_at=timezone.now())
    receiver.verifiers = [Webhook(new)]
    _emit(tenant)
    relay_until_settled()
    assert len(receiver.requests[1]["signature"].split(" ")) == 1


def test_backoff_doubles_with_jitter_up_to_the_cap_for_about_three_days(settings):
    rng = random.Random(7)
    waits = [relay.backoff(n, rng).total_seconds() for n in range(1, settings.OUTBOX_MAX_ATTEMPTS)]
    assert [round(w / base) for w, base in zip(waits[:3], (5, 10, 20), strict=True)] == [1, 1, 1]
    assert max(waits) <= settings.OUTBOX_RETRY_CAP * 1.2
    assert 2.5 * 86400 <= sum(waits) <= 3.5 * 86400


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://192.168.1.1/",
        "ftp://example.com/hook",
        "http:///nohost",
    ],
)
def test_private_and_odd_urls_are_refused(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(UnsafeURL):
        check_url(url)


@pytest.mark.django_db
def test_an_unsafe_url_is_dead_at_send_time(tenant, settings):
    WebhookSubscription.objects.create(tenant=tenant, url="http://127.0.0.1:9/hook", secret=new_secret())
    settings.WEBHOOK_ALLOW_PRIVATE = False
    _emit(tenant)
    relay_until_settled()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error.startswith("unsafe URL")) == ("dead", True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_relays_attempt_each_delivery_once(httpserver):
    tenant = TenantFactory(slug="relay-race")
    sub = _subscribe(tenant, httpserver)
    receiver = Receiver([sub.secret])
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    ids = {str(_emit(tenant, member_id=f"m{i}").pk) for i in range(60)}
    race(4, lambda _: relay.relay(budget_seconds=20, batch=5))
    assert sorted(r["id"] for r in receiver.requests) == sorted(ids)  # each once, none twice
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_messages_are_published_to_the_topic_exchange(settings):
    from kombu import Connection, Queue

    from outbox.broker import exchange

    settings.BROKER_PUBLISH = True
    tenant = TenantFactory(slug="broker")
    with Connection(settings.REDIS_URL) as conn:
        queue = Queue("test-tier-changes", exchange(), routing_key="tier.*", auto_delete=True)
        bound = queue(conn.default_channel)
        bound.declare()
        bound.purge()
        tier = _emit(tenant, type_="tier.changed", tier="gold")
        _emit(tenant, type_="points.applied", total=5)  # not bound: not in this queue
        relay_until_settled()
        got = []
        while (msg := bound.get(no_ack=True)) is not None:
            got.append((msg.properties.get("message_id"), msg.payload["type"], msg.payload["data"]))
        bound.delete()
    assert got == [(str(tier.pk), "tier.changed", {"tier": "gold"})]
    assert set(Delivery.objects.values_list("destination", "status")) == {("broker", "delivered")}

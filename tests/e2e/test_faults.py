"""Fault tolerance on the deployed topology (issue 7): a web server (gunicorn), a Celery worker and
beat, on PostgreSQL and a Redis of their own, with a local webhook subscriber. 2,000 asynchronous
events are posted while the worker is killed with SIGKILL once (and restarted) and Redis is restarted
once (losing every queued task). After recovery every event is processed exactly once and every outbox
message reaches the subscriber (distinct ids = messages; duplicates only as retries of the same id);
local stand-ins for the IAM and the Point Service get every member linked and every point transaction
once per ``Idempotency-Key``.

Recovery is the design's, not the test's: PostgreSQL is the truth, the broker only a trigger. Lost
evaluation tasks are re-enqueued by the sweeper (beat), leased deliveries of a killed worker expire
and are attempted again, and receivers dedupe on ``webhook-id``.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from events.registration import register_member
from integrations.adapters import IAM_TYPES
from members.models import Member, MemberEvent, MetricDay
from members.services import Registration
from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from outbox.webhooks import new_secret
from points.models import PointConversionRule, PointTransaction
from tests.conftest import AUDIENCE, ISSUER, REQUIRE_SERVICES, claims_for, sign
from tests.factories import TenantFactory, hotel_ladder
from tiers.models import MemberTierAssignment

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 50
PER_MEMBER = 40  # 2,000 events
CHUNK = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Topology:
    """Subprocesses with their own Redis; each can be killed and restarted."""

    def __init__(self, env: dict[str, str], redis_port: int, web_port: int, tmp: Path):
        self.env, self.redis_port, self.web_port, self.tmp = env, redis_port, web_port, tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.log = open(ROOT / "var" / "e2e-faults.log", "ab")  # noqa: SIM115 - closed in stop()

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs[name] = subprocess.Popen(  # noqa: S603 - our own programs
            argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_redis(self) -> None:
        self._spawn(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        self._wait(lambda: socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5).close())

    def start_worker(self) -> None:
        self._spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "events,outbox,sync,maintenance",
                "-c",
                "2",
                "-l",
                "INFO",
                "-n",
                f"faults-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def start_beat(self) -> None:
        self._spawn(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "INFO",
                "--scheduler",
                "celery.beat:PersistentScheduler",
                "-s",
                str(self.tmp / "beat-schedule"),
            ],
        )

    def start_web(self) -> None:
        self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{self.web_port}",
                "--timeout",
                "60",
            ],
        )
        self._wait(lambda: httpx.get(f"http://127.0.0.1:{self.web_port}/api/v1/health", timeout=1).raise_for_status())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                self.kill(name, signal.SIGTERM if name != "redis" else signal.SIGKILL)
        self.log.close()

    def _wait(self, probe, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                probe()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class Peer:
    """The IAM or the Point Service: answers 200 (links with attributes) and counts requests per
    ``Idempotency-Key`` and per path."""

    def __init__(self, reply: dict | None = None):
        self.reply = reply or {}
        self.keys: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.keys[request.headers.get("Idempotency-Key", "")] += 1
            self.paths[request.path] += 1
        return Response(json.dumps(self.reply), status=200, content_type="application/json")


class Subscriber:
    """The webhook receiver: verifies every signature, counts requests per webhook-id."""

    def __init__(self, secret: str):
        self.verifier = Webhook(secret)
        self.seen: Counter[str] = Counter()
        self.bad: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        try:
            self.verifier.verify(body, dict(request.headers))
        except Exception as exc:  # noqa: BLE001 - recorded and asserted
            self.bad.append(str(exc))
            return Response("bad signature", status=400)
        with self.lock:
            self.seen[request.headers["webhook-id"]] += 1
        return Response("ok", status=200)


@pytest.fixture
def receiver():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_2000_events_survive_a_killed_worker_and_a_restarted_redis(receiver, jwt_keys, tmp_path):
    if not shutil.which("redis-server"):
        if REQUIRE_SERVICES:
            pytest.fail("REQUIRE_SERVICES=1 but redis-server is not installed")
        pytest.skip("needs the redis-server binary")
    tenant = TenantFactory(slug="faults", timezone="Asia/Bangkok")
    hotel_ladder(tenant)
    PointConversionRule.objects.create(tenant=tenant, code="base", unit_amount=Decimal("1.00"), points_per_unit=10)
    tenant.bump_config_version()
    secret = new_secret()
    subscriber = Subscriber(secret)
    receiver.expect_request("/hook", method="POST").respond_with_handler(subscriber)
    WebhookSubscription.objects.create(tenant=tenant, url=receiver.url_for("/hook"), secret=secret)
    iam_links, iam_pushes, point_service = Peer({"attributes": {"segment": "e2e"}}), Peer(), Peer()
    receiver.expect_request(re.compile(r"/iam/members/[^/]+/link"), method="POST").respond_with_handler(iam_links)
    receiver.expect_request(re.compile(r"/iam/members/[^/]+/privileges"), method="POST").respond_with_handler(
        iam_pushes
    )
    receiver.expect_request("/points/transactions", method="POST").respond_with_handler(point_service)

    redis_port, web_port = _free_port(), _free_port()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    db = connection.settings_dict
    env = dict(os.environ) | {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": broker,
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_PUBLIC_KEY_FILES": f"test-key={jwt_keys['pem_path']}",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "IAM_BASE_URL": receiver.url_for("/iam"),
        "POINT_SERVICE_URL": receiver.url_for("/points"),
        "OUTBOX_RELAY_INTERVAL": "1",
        "OUTBOX_RETRY_BASE": "1",
        "OUTBOX_RETRY_CAP": "4",
        "OUTBOX_LEASE_SECONDS": "10",
        "EVENT_SWEEP_INTERVAL": "2",
        "EVENT_SWEEP_AFTER": "5",
    }
    topology = Topology(env, redis_port, web_port, tmp_path)
    try:
        topology.start_redis()
        topology.start_web()
        topology.start_worker()
        topology.start_beat()
        for i in range(MEMBERS):  # member.created: relayed by the topology, whose settings name the IAM
            register_member(tenant=tenant, registration=Registration(external_id=f"f{i}"), actor="e2e")
        token = sign(claims_for(tenant.slug, "privilege:read privilege:write"), jwt_keys["trusted"])
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{web_port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        when = timezone.now() - timedelta(days=2)
        events = [
            {
                "member_id": f"f{i}",
                "event_id": f"f{i}-{j}",
                "source": "pos",
                "type": "transaction",
                "occurred_at": (when + timedelta(minutes=j)).isoformat(),
                "amount": f"{10 + j}.00",
                "quantities": {"nights": 1, "stays": 1},
            }
            for j in range(PER_MEMBER)
            for i in range(MEMBERS)
        ]
        for n, start in enumerate(range(0, len(events), CHUNK)):
            if n == 5:
                topology.kill("worker")  # SIGKILL mid-stream, tasks in flight
                topology.start_worker()
            if n == 12:
                topology.kill("redis")  # every queued task is lost (no persistence)
                topology.start_redis()
            chunk = {"events": events[start : start + CHUNK]}
            for _ in range(20):  # a client retries what failed; ingestion is idempotent
                try:
                    response = client.post("/api/v1/events/batch", json=chunk)
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                if response.status_code < 500:
                    break
                time.sleep(0.5)
            assert response.status_code in (200, 202, 207), response.text
            outcomes = Counter(item["outcome"] for item in response.json()["results"])
            assert set(outcomes) <= {"accepted", "replayed"}, outcomes

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            unprocessed = MemberEvent.objects.filter(tenant=tenant).exclude(status="processed").count()
            undelivered = OutboxMessage.objects.filter(tenant=tenant).exclude(status="delivered").count()
            if not unprocessed and not undelivered:
                break
            time.sleep(1)
    finally:
        topology.stop()

    # Every event processed, exactly once.
    assert MemberEvent.objects.filter(tenant=tenant, status="processed").count() == MEMBERS * PER_MEMBER
    assert MemberEvent.objects.filter(tenant=tenant).exclude(status="processed").count() == 0
    earns = PointTransaction.objects.filter(member__tenant=tenant, kind="earn")
    assert earns.count() == MEMBERS * PER_MEMBER
    assert earns.values("event_id").distinct().count() == MEMBERS * PER_MEMBER
    expected_points = MEMBERS * sum((10 + j) * 10 for j in range(PER_MEMBER))
    assert sum(earns.values_list("points", flat=True)) == expected_points
    nights = sum(MetricDay.objects.filter(tenant=tenant, metric="quantity:nights").values_list("value", flat=True))
    assert nights == MEMBERS * PER_MEMBER * MetricDay.SCALE
    tiers = set(MemberTierAssignment.objects.filter(tenant=tenant).values_list("tier__code", flat=True))
    assert tiers == {"gold"}

    # Every outbox message delivered to the subscriber; duplicates only as retries of the same id.
    messages = set(OutboxMessage.objects.filter(tenant=tenant).values_list("id", flat=True))
    assert OutboxMessage.objects.filter(tenant=tenant).exclude(status="delivered").count() == 0
    assert Delivery.objects.filter(tenant=tenant, destination="webhook", status="delivered").count() == len(messages)
    assert subscriber.bad == []
    assert set(subscriber.seen) == {str(m) for m in messages}
    duplicates = sum(subscriber.seen.values()) - len(subscriber.seen)

    # The IAM linked every member once in effect (attributes stored); the Point Service got every
    # point transaction, each under its own id as Idempotency-Key.
    assert sorted(iam_links.paths) == sorted(f"/iam/members/f{i}/link" for i in range(MEMBERS))
    assert set(Member.objects.filter(tenant=tenant).values_list("attributes__segment", "iam_linked")) == {("e2e", True)}
    pushed = OutboxMessage.objects.filter(tenant=tenant, type__in=IAM_TYPES - {"member.created"})
    assert set(iam_pushes.keys) == {str(m) for m in pushed.values_list("id", flat=True)}
    transactions = PointTransaction.objects.filter(member__tenant=tenant)
    assert set(point_service.keys) == {str(pk) for pk in transactions.values_list("pk", flat=True)}
    assert set(transactions.values_list("sync_status", flat=True)) == {"sent"}
    print(
        json.dumps(
            {
                "events": MEMBERS * PER_MEMBER,
                "messages": len(messages),
                "webhook_requests": sum(subscriber.seen.values()),
                "duplicates": duplicates,
                "point_service_requests": sum(point_service.keys.values()),
                "point_transactions": transactions.count(),
                "iam_requests": sum(iam_links.paths.values()) + sum(iam_pushes.paths.values()),
            }
        )
    )

"""Operational endpoints: health, OpenAPI schema and docs, Prometheus metrics."""

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

from config import ops
from outbox.models import Delivery, OutboxMessage
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db


def test_health_is_public_and_ok(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


def test_health_names_the_failing_check_with_503(client, monkeypatch):
    def broken() -> str:
        raise ConnectionRefusedError("redis down")

    monkeypatch.setitem(ops.CHECKS, "cache", broken)
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "cache": "error: ConnectionRefusedError", "broker": "ok"}
    assert "redis down" not in response.content.decode()


def test_broker_check_fails_when_the_broker_is_unreachable(settings):
    from kombu.exceptions import OperationalError

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(OperationalError):
        ops.check_broker()


@pytest.mark.redis
def test_broker_check_reaches_a_real_redis(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    assert ops.check_broker() == "ok"


@pytest.mark.redis
def test_cache_check_uses_the_configured_redis(settings):
    """With REDIS_URL set the default cache is Redis (CI): the health check exercises it for real."""
    from django.core.cache import cache

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert ops.check_cache() == "ok"
    assert cache.get("health:probe") == "1"


def _api_routes() -> set[str]:
    """Every /api/v1 route of the URLconf, as OpenAPI paths."""
    import re

    out: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                out.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", prefix + str(p.pattern)))

    walk(get_resolver().url_patterns, "")
    # drf-spectacular documents a "pk" path parameter as "id" (SCHEMA_COERCE_PATH_PK).
    return {r.replace("{pk}", "{id}") for r in out if r.startswith("/api/v1/")}


def test_schema_generates_without_warnings_and_lists_every_route(tmp_path):
    target = tmp_path / "schema.yaml"
    # --fail-on-warn turns any drf-spectacular warning or error into a failure; --validate checks
    # the document against the OpenAPI 3 JSON schema.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    documented = set(schema["paths"])
    undocumented_by_design = {"/api/v1/schema", "/api/v1/docs", "/api/v1/redoc"}
    assert _api_routes() - undocumented_by_design == documented
    assert "/api/v1/audit" in documented
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_schema_and_docs_are_served(client):
    assert client.get("/api/v1/schema").status_code == 200
    for url in ("/api/v1/docs", "/api/v1/redoc"):
        response = client.get(url)
        assert response.status_code == 200
        assert b"<html" in response.content.lower()


def test_metrics_expose_request_latency_and_outbox_backlog(client, tenant):
    from django.db import transaction

    from outbox.emit import emit

    with transaction.atomic():
        emit(tenant=tenant, type="member.created", member_id="m1", data={})
        emit(tenant=tenant, type="member.created", member_id="m2", data={})
    OutboxMessage.objects.filter(member_id="m2").update(status=OutboxMessage.Status.DEAD)
    dead = OutboxMessage.objects.get(member_id="m2")
    Delivery.objects.create(tenant=tenant, message=dead, destination="point_service", status="dead")
    Delivery.objects.create(tenant=tenant, message=dead, destination="broker", status="delivered")
    client.get("/api/v1/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    assert 'privilege_http_request_duration_seconds_count{method="GET",route="api/v1/health",status="2xx"}' in text
    assert 'privilege_outbox_backlog{status="pending"} 1.0' in text
    assert 'privilege_outbox_backlog{status="dead"} 1.0' in text
    assert 'privilege_delivery_backlog{destination="point_service",status="dead"} 1.0' in text
    assert 'privilege_delivery_backlog{destination="broker"' not in text  # delivered ones are not backlog


def test_home_redirects_to_docs(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/api/v1/docs"


def test_health_rejects_writes_as_problem(client):
    assert_problem(client.post("/api/v1/health"), 405, "method_not_allowed")


@pytest.mark.django_db
def test_a_task_binds_its_correlation_id_and_leaves_nothing_behind():
    """Log lines of a task carry its correlation id; the next work in the process does not."""
    from config.celery import app
    from config.tracing import current_request_id

    seen = []

    @app.task(name="tests.remember_request_id")
    def remember() -> None:
        seen.append(current_request_id())

    remember.apply(headers={"correlation_id": "req-77"})
    assert seen == ["req-77"]
    assert current_request_id() == ""

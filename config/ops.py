"""Operational endpoints: health (no auth) and Prometheus metrics."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.metrics import render_metrics

logger = logging.getLogger("privilege.health")


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_cache() -> str:
    cache.set("health:probe", "1", timeout=10)
    if cache.get("health:probe") != "1":
        raise RuntimeError("cache did not return the probe value")
    return "ok"


def check_broker() -> str:
    """In the embedded default tasks run in-process: there is no broker to reach."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "ok"
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}

_HealthSerializer = inline_serializer(
    "Health",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "unavailable"]),
        "checks": serializers.DictField(child=serializers.CharField()),
    },
)


class HealthView(APIView):
    """200 when the database, cache and broker answer; 503 naming each failing check."""

    public = True
    authentication_classes: list = []

    @extend_schema(responses={200: _HealthSerializer, 503: _HealthSerializer}, auth=[], tags=["operations"])
    def get(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        for name, check in CHECKS.items():
            try:
                checks[name] = check()
            except Exception as exc:  # noqa: BLE001 - a failing dependency is the answer, not an error
                logger.warning("health check failed", extra={"check": name, "error": type(exc).__name__})
                checks[name] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return Response(
            {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
        )


def metrics_view(request: HttpRequest) -> HttpResponse:
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)

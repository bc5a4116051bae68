"""Helpers shared by the test modules: a response's problem, body and validation errors, the audit trail,
the tenant's configuration version, and a hotel stay's event body.

Import them from here (``from tests.helpers import ...``); fixtures live in ``tests/conftest.py``, row
builders in ``tests/factories.py``.
"""

import json
from datetime import timedelta
from typing import Any

from django.utils import timezone

from audit.models import AuditEntry


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with that status and stable code, and nothing leaks."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == status
    assert body["code"] == code
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    assert "Traceback" not in response.content.decode()
    return body


def config_version(tenant: Any) -> int:
    """The tenant's configuration version as stored now."""
    tenant.refresh_from_db()
    return tenant.config_version


def body_without_timestamps(response: Any, *timestamps: str) -> dict[str, Any]:
    """The JSON body without its timestamps (``created_at``/``updated_at`` unless named), asserted present."""
    stamps = timestamps or ("created_at", "updated_at")
    body = response.json()
    assert set(stamps) <= set(body), body
    return {k: v for k, v in body.items() if k not in stamps}


def audit_trail(tenant: Any) -> list[tuple[str, str, str]]:
    """The tenant's audit entries in order, as (action, target type, target id)."""
    return list(
        AuditEntry.objects.filter(tenant=tenant).order_by("pk").values_list("action", "target_type", "target_id")
    )


def validation_errors(response: Any) -> dict[str, list[str]]:
    """A 422 ``validation_error`` problem's errors, per field."""
    return assert_problem(response, 422, "validation_error")["errors"]


def stay(event_id: str, nights: int = 1, **extra: Any) -> dict[str, Any]:
    """The body of a 100.00 hotel stay an hour ago (``POST /member/{id}/event``), with ``extra`` fields."""
    return {
        "event_id": event_id,
        "source": "pos",
        "type": "transaction",
        "occurred_at": (timezone.now() - timedelta(hours=1)).isoformat(),
        "amount": "100.00",
        "quantities": {"nights": nights, "stays": 1},
        **extra,
    }

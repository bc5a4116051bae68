"""``GET /member/{id}/points`` window totals say what they count (issue 11), and a quote needs only
what a quote needs."""

from datetime import datetime
from unittest import mock
from zoneinfo import ZoneInfo

import pytest

from members.models import MemberEvent
from points.models import PointPolicy, PointTransaction
from points.selectors import member_point_totals, point_windows
from tests.points.test_pipeline import _rule, buy

pytestmark = pytest.mark.django_db
BANGKOK = ZoneInfo("Asia/Bangkok")
# Wednesday 11 March 2026, 10:00 in Bangkok (03:00 UTC).
NOW = datetime(2026, 3, 11, 10, 0, tzinfo=BANGKOK)


def test_windows_are_the_current_day_iso_week_and_month_in_tenant_time():
    windows = point_windows(NOW, BANGKOK)
    assert windows == {
        "day": (datetime(2026, 3, 11, tzinfo=BANGKOK), datetime(2026, 3, 12, tzinfo=BANGKOK)),
        "week": (datetime(2026, 3, 9, tzinfo=BANGKOK), datetime(2026, 3, 16, tzinfo=BANGKOK)),
        "month": (datetime(2026, 3, 1, tzinfo=BANGKOK), datetime(2026, 4, 1, tzinfo=BANGKOK)),
    }
    december = point_windows(datetime(2026, 12, 31, 23, 0, tzinfo=BANGKOK), BANGKOK)
    assert december["month"] == (datetime(2026, 12, 1, tzinfo=BANGKOK), datetime(2027, 1, 1, tzinfo=BANGKOK))


def test_window_totals_count_every_kind_of_ledger_row_by_its_local_day(tenant, program, ann):
    rows = [
        ("welcome", 500, datetime(2026, 3, 11, 0, 10, tzinfo=BANGKOK)),  # today locally, yesterday in UTC
        ("reversal", -50, datetime(2026, 3, 11, 9, 0, tzinfo=BANGKOK)),  # today
        ("earn", 200, datetime(2026, 3, 10, 23, 30, tzinfo=BANGKOK)),  # Tuesday: this week
        ("code", 70, datetime(2026, 3, 9, 0, 0, tzinfo=BANGKOK)),  # Monday 00:00: this week
        ("adjustment", 9, datetime(2026, 3, 8, 23, 59, tzinfo=BANGKOK)),  # Sunday: last week, this month
        ("earn", 1000, datetime(2026, 2, 28, 12, 0, tzinfo=BANGKOK)),  # last month
    ]
    for kind, points, at in rows:
        PointTransaction.objects.create(tenant=tenant, member=ann, kind=kind, points=points, occurred_at=at)
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        totals = member_point_totals(tenant=tenant, member=ann)
    assert totals == {"total": 1729, "window_totals": {"day": 450, "week": 720, "month": 729}}


def test_welcome_points_show_in_todays_window(api, tenant, program):
    PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    tenant.bump_config_version()
    assert api.post("/api/v1/member", {"external_id": "new"}, format="json").status_code == 201
    body = api.get("/api/v1/member/new/points").json()
    assert (body["total"], body["window_totals"]) == (500, {"day": 500, "week": 500, "month": 500})
    assert [(t["kind"], t["points"]) for t in body["transactions"]] == [("welcome", 500)]


def test_the_schema_names_the_windows(api):
    schema = api.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    windows = schema["components"]["schemas"]["WindowTotals"]
    assert set(windows["properties"]) == {"day", "week", "month"}
    assert "tenant's time zone" in windows["description"]


def test_a_quote_needs_no_event_id_source_or_time(api, tenant, program, ann):
    _rule(tenant, None)
    quote = api.post("/api/v1/member/ann/points/calculate", {"type": "transaction", "amount": "25.00"}, format="json")
    assert quote.status_code == 200, quote.content
    assert quote.json()["total"] == 250
    full = api.post("/api/v1/member/ann/points/calculate", buy("q1", "25.00"), format="json")
    assert full.json() == quote.json()
    assert (PointTransaction.objects.count(), MemberEvent.objects.count()) == (0, 0)


def test_a_quote_with_a_source_applies_that_sources_rules_only(api, tenant, program, ann):
    _rule(tenant, None, code="web-only", source="web", points_per_unit=3)
    tenant.bump_config_version()
    body = {"type": "transaction", "amount": "10.00"}
    assert api.post("/api/v1/member/ann/points/calculate", body, format="json").json()["total"] == 0
    web = api.post("/api/v1/member/ann/points/calculate", {**body, "source": "web"}, format="json").json()
    assert (web["total"], [t["rule"] for t in web["transactions"]]) == (30, ["web-only"])


def test_a_quote_still_refuses_a_bad_type_and_a_naive_time(api, program, ann):
    bad = api.post("/api/v1/member/ann/points/calculate", {"type": "x"}, format="json")
    assert (bad.status_code, bad.json()["code"], list(bad.json()["errors"])) == (422, "validation_error", ["type"])
    naive = api.post(
        "/api/v1/member/ann/points/calculate",
        {"type": "transaction", "amount": "1.00", "occurred_at": "2026-03-01T10:00:00"},
        format="json",
    )
    assert (naive.status_code, list(naive.json()["errors"])) == (422, ["occurred_at"])

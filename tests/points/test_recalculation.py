"""Retroactive recalculation: what the rules now say against what was awarded (DOMAIN §4.5)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from members.models import MetricDay
from outbox.models import OutboxMessage
from points.models import PointBucket, PointConversionRule, PointTransaction
from points.recalculation import recalculate_points, widen
from points.services import rollback_point_transaction
from tests.points.test_pipeline import URL, buy

pytestmark = pytest.mark.django_db


def test_widen_to_whole_weeks_and_months():
    # Wed 4 March 2026 .. Thu 12 March: the month starts on a Sunday (1 Mar), the week on Mon 2 Mar.
    assert widen(date(2026, 3, 4), date(2026, 3, 13)) == (date(2026, 3, 1), date(2026, 4, 1))
    # 31 Dec 2025 (Wed) .. 2 Jan 2026: ISO week of Mon 29 Dec to Sun 4 Jan; months Dec and Jan.
    assert widen(date(2025, 12, 31), date(2026, 1, 3)) == (date(2025, 12, 1), date(2026, 2, 1))


@pytest.fixture
def earned(api, tenant, program, ann):
    rule = PointConversionRule.objects.create(
        tenant=tenant, code="base", unit_amount=Decimal("1.00"), points_per_unit=10, event_types=["transaction"]
    )
    tenant.bump_config_version()
    when = timezone.now() - timedelta(days=1)
    api.post(URL, buy("e1", "30.00", when=when), format="json")  # 300
    api.post(URL, buy("e2", "50.00", when=when), format="json")  # 500
    return rule, when


def _range(when):
    day = when.date()
    return {"since": day - timedelta(days=1), "until": day + timedelta(days=1)}


def test_dry_run_reports_and_changes_nothing(tenant, earned):
    rule, when = earned
    rule.points_per_unit = 12
    rule.save()
    tenant.bump_config_version()
    report = recalculate_points(tenant=tenant, actor="user:ops", **_range(when))
    assert (report.applied, report.members, report.events, report.total) == (False, 1, 2, 160)
    assert [(a["event_id"], a["awarded"], a["should"], a["difference"]) for a in report.adjustments] == [
        ("e1", 300, 360, 60),
        ("e2", 500, 600, 100),
    ]
    assert PointTransaction.objects.filter(kind="adjustment").count() == 0


def test_apply_writes_adjustments_buckets_metrics_audit_and_message_once(tenant, earned, ann):
    rule, when = earned
    rule.points_per_unit = 8
    rule.save()
    tenant.bump_config_version()
    report = recalculate_points(tenant=tenant, actor="user:ops", apply=True, **_range(when))
    assert report.total == -160
    assert sorted(PointTransaction.objects.filter(kind="adjustment").values_list("points", flat=True)) == [-100, -60]
    assert sum(PointTransaction.objects.values_list("points", flat=True)) == 640
    global_day = PointBucket.objects.get(member=ann, key__startswith="global:day:").total
    assert global_day == 640
    assert sum(MetricDay.objects.filter(member=ann, metric="points").values_list("value", flat=True)) == (
        640 * MetricDay.SCALE
    )
    assert AuditEntry.objects.filter(action="points.recalculated", actor="user:ops").count() == 1
    assert OutboxMessage.objects.get(type="points.adjusted").data["total"] == -160
    again = recalculate_points(tenant=tenant, actor="user:ops", apply=True, **_range(when))
    assert (again.total, again.adjustments) == (0, [])


def test_refunded_and_rolled_back_events(api, tenant, earned):
    rule, when = earned
    api.post(
        URL,
        {
            "event_id": "r1",
            "source": "pos",
            "type": "refund",
            "occurred_at": timezone.now().isoformat(),
            "refund_of": "e2",
            "amount": "25.00",
        },
        format="json",
    )  # e2: 500 - 250
    rollback_point_transaction(
        tenant=tenant,
        tx=PointTransaction.objects.get(event__event_id="e1", kind="earn"),
        actor="user:ops",
        reason="fraud",
    )
    rule.points_per_unit = 20
    rule.save()
    tenant.bump_config_version()
    report = recalculate_points(tenant=tenant, actor="user:ops", **_range(when))
    # e2: should be 1,000 less half refunded = 500; it holds 250 → +250. e1 was rolled back: skipped.
    assert [(a["event_id"], a["awarded"], a["should"], a["difference"]) for a in report.adjustments] == [
        ("e2", 250, 500, 250)
    ]
    assert report.skipped == ["ann/e1: rolled back by an operator"]


def test_admin_action_previews_then_applies(client, tenant, earned, ann):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from tests.factories import TenantMembershipFactory, UserFactory

    rule, when = earned
    rule.points_per_unit = 11
    rule.save()
    tenant.bump_config_version()
    staff = UserFactory(username="ops")
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="members"))
    TenantMembershipFactory(user=staff, tenant=tenant)
    client.force_login(staff)
    url = reverse("admin:members_member_changelist")
    base = {
        "action": "recalculate_points",
        "_selected_action": [ann.pk],
        **{k: v.isoformat() for k, v in _range(when).items()},
    }
    form = client.post(url, {"action": "recalculate_points", "_selected_action": [ann.pk]})
    assert form.status_code == 200
    assert b"Preview" in form.content
    preview = client.post(url, {**base, "preview": "Preview"})
    assert preview.status_code == 200
    assert preview.context["report"].total == 80
    assert PointTransaction.objects.filter(kind="adjustment").count() == 0
    applied = client.post(url, {**base, "apply": "Apply"})
    assert applied.status_code == 302
    assert PointTransaction.objects.filter(kind="adjustment").count() == 2
    assert AuditEntry.objects.filter(action="points.recalculated", actor="user:ops").count() == 1

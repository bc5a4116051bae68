"""Reads of the events context, always within one tenant."""

from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import QuerySet
from django.utils import timezone

from events.evaluation import metrics_window_start
from members.models import Member, MemberEvent
from tenancy.models import Tenant
from tiers.metrics import daily_metrics
from tiers.models import MemberTierAssignment
from tiers.progress import progress
from tiers.selectors import assignment_snapshot, member_snapshot, tier_type_specs


def member_events(*, tenant: Tenant) -> QuerySet[MemberEvent]:
    return MemberEvent.objects.filter(tenant=tenant).select_related("member")


def tier_progress(
    *, tenant: Tenant, member: Member, assignments: list[MemberTierAssignment] | None = None
) -> dict[int, dict[str, Any] | None]:
    """Per tier type id, what the member still needs for the next tier (``tiers.progress.progress``).
    ``assignments`` are the member's current ones when the caller has already read them."""
    now = timezone.now()
    tz = ZoneInfo(tenant.timezone)
    specs = {spec.id: spec for spec in tier_type_specs(tenant=tenant)}
    if assignments is None:
        assignments = list(MemberTierAssignment.objects.filter(member=member))
    metrics = daily_metrics(member=member, since=metrics_window_start(tenant=tenant, assignments=assignments, now=now))
    snapshot = member_snapshot(member)
    return {
        a.tier_type_id: progress(specs[a.tier_type_id], snapshot, assignment_snapshot(a), metrics, now, tz)
        for a in assignments
        if a.tier_type_id in specs
    }

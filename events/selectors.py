"""Reads of the events context, always within one tenant."""

from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, QuerySet
from django.utils import timezone

from audit.models import AuditEntry
from benefits.models import MemberBenefit
from events.evaluation import metrics_window_start
from members.models import Member, MemberEvent
from points.models import PointTransaction
from tenancy.models import Tenant
from tiers.metrics import daily_metrics
from tiers.models import MemberTierAssignment, MemberTierChange
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


EXPORT_FORMAT = 1


def member_export(*, tenant: Tenant, member: Member) -> dict[str, Any]:
    """Everything held about one member, as one document (GDPR/PDPA access, API.md "Privacy"): the
    profile, current tiers and their history, events as received, point transactions, benefit grants
    and the audit entries that name the member. Tiers, rules and benefits appear by code, never by
    internal id; each list is oldest first. A fixed number of queries, whatever the member's size."""
    return {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now(),
        "profile": {
            "external_id": member.external_id,
            "name": member.name,
            "email": member.email,
            "mobile": member.mobile,
            "status": member.status,
            "attributes": member.attributes,
            "registered_at": member.registered_at,
            "iam_linked": member.iam_linked,
        },
        "tiers": list(
            MemberTierAssignment.objects.filter(tenant=tenant, member=member)
            .order_by("-tier_type__priority", "tier_type_id")
            .values(
                "since",
                "valid_until",
                "source",
                "lock_until",
                "expires_at",
                tier_type_code=F("tier_type__code"),
                tier_code=F("tier__code"),
            )
        ),
        "tier_history": list(
            MemberTierChange.objects.filter(tenant=tenant, member=member)
            .order_by("at", "id")
            .values(
                "at",
                "source",
                "reason",
                "actor",
                "event_ref",
                "valid_until",
                tier_type_code=F("tier_type__code"),
                from_tier_code=F("from_tier__code"),
                to_tier_code=F("to_tier__code"),
                rule_code=F("rule__code"),
            )
        ),
        "events": list(
            MemberEvent.objects.filter(tenant=tenant, member=member)
            .order_by("received_at", "id")
            .values(
                "event_id",
                "source",
                "type",
                "occurred_at",
                "received_at",
                "amount",
                "currency",
                "product",
                "partner",
                "channel",
                "campaign_code",
                "quantities",
                "attributes",
                "qualifying",
                "refunded_amount",
                "status",
                refund_of_event=F("refund_of__event_id"),
            )
        ),
        "point_transactions": list(
            PointTransaction.objects.filter(tenant=tenant, member=member)
            .order_by("created_at", "id")
            .values(
                "kind",
                "points",
                "base",
                "tier_multiplier",
                "modifiers",
                "capped_by",
                "occurred_at",
                "created_at",
                event_ref=F("event__event_id"),
                rule_code=F("rule__code"),
            )
        ),
        "benefit_grants": list(
            MemberBenefit.objects.filter(tenant=tenant, member=member)
            .order_by("granted_at", "id")
            .values(
                "source",
                "source_ref",
                "status",
                "granted_at",
                "expires_at",
                "uses",
                "closed_at",
                "reason",
                benefit_code=F("benefit__code"),
            )
        ),
        "audit": list(
            AuditEntry.objects.filter(tenant=tenant, member_id=member.external_id)
            .order_by("at", "id")
            .values("at", "actor", "action", "target_type", "before", "after", "reason")
        ),
    }

"""Rebuilding a member's daily metrics from the event log (``rebuild_metrics`` command): the
contributions of ``tiers.metrics`` with the points each event earned, read from the ledger."""

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from members.locks import lock_member
from members.models import Member, MemberEvent, MetricDay
from points.models import PointTransaction
from tenancy.models import Tenant
from tiers.metrics import Contributions, add_contributions, contributions


def _counted_contributions(tenant: Tenant, events: Iterable[MemberEvent]) -> Contributions:
    """Replay counted events in processing order (refunds need the original's refunded total then)."""
    total: Contributions = defaultdict(Decimal)
    refunded: dict[int, Decimal] = defaultdict(Decimal)
    originals = {}
    events = list(events)
    points = dict(PointTransaction.objects.filter(event__in=events).values_list("event").annotate(n=Sum("points")))
    for event in events:
        originals[event.pk] = event
        original = None
        if event.refund_of_id is not None:
            original = originals.get(event.refund_of_id) or MemberEvent.objects.get(pk=event.refund_of_id)
            refunded[original.pk] += event.amount or Decimal(0)
            original = _with_refunded(original, refunded[original.pk])
        for key, value in contributions(event, tenant, original=original, points=points.get(event.pk, 0)).items():
            total[key] += value
    return total


def _with_refunded(original: MemberEvent, refunded: Decimal) -> MemberEvent:
    copy = MemberEvent(**{f.attname: getattr(original, f.attname) for f in MemberEvent._meta.concrete_fields})
    copy.refunded_amount = refunded
    return copy


@transaction.atomic
def rebuild_metrics(*, tenant: Tenant, member: Member) -> int:
    """Recompute the member's daily rows from their counted events; returns how many rows now exist."""
    member = lock_member(member)
    MetricDay.objects.filter(member=member).delete()
    events = MemberEvent.objects.filter(member=member, counted=True).order_by("processed_at", "id")
    add_contributions(tenant=tenant, member=member, values=_counted_contributions(tenant, events))
    return MetricDay.objects.filter(member=member).count()

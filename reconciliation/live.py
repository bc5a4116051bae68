"""The stored side of a reconciliation, read in bulk: for a range of members, a constant number of
queries whatever their number (``reconciliation.runs`` pairs it with ``simulation.loader.histories``)."""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

from django.db.models import F, Sum

from benefits.grants import LOST_REASON
from benefits.models import Benefit, MemberBenefit
from points.models import PointTransaction
from tenancy.models import Tenant
from tiers.models import MemberTierAssignment


@dataclass
class StoredState:
    """Per member pk: net points per event pk, operators' reversals per event pk, the event ids, the tier
    per tier type, the active tier grants and the benefits closed while held (used up, expired, revoked
    by hand), and the events whose award drew on a shared campaign pool (not checked)."""

    points: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    operator: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    names: dict[int, str] = field(default_factory=dict)
    pooled: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    tiers: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    active: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    closed: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))


@dataclass(frozen=True)
class BenefitFacts:
    """Tenant-wide facts about benefits: out of stock, kept when the tier is lost."""

    exhausted: frozenset[int]
    kept_on_loss: frozenset[int]


def benefit_facts(tenant: Tenant) -> BenefitFacts:
    rows = Benefit.objects.filter(tenant=tenant)
    return BenefitFacts(
        exhausted=frozenset(
            rows.filter(total_quantity__isnull=False, granted_count__gte=F("total_quantity")).values_list(
                "pk", flat=True
            )
        ),
        kept_on_loss=frozenset(rows.filter(retain_on_loss=True).values_list("pk", flat=True)),
    )


def stored_state(
    tenant: Tenant, members: Collection[int], checks: Collection[str], pooled_codes: Collection[str]
) -> StoredState:
    """What is stored for ``members`` (pks), for the member checks asked."""
    state = StoredState()
    if "points" in checks:
        ledger = PointTransaction.objects.filter(tenant=tenant, member_id__in=members, event__isnull=False)
        for member_id, event_id, name, points in (
            ledger.values_list("member_id", "event_id", "event__event_id").annotate(n=Sum("points")).order_by()
        ):
            state.points[member_id][event_id] = points
            state.names[event_id] = name
        reversals = ledger.filter(kind=PointTransaction.Kind.REVERSAL, reversal_of__event_id=F("event_id"))
        for member_id, event_id, points in (
            reversals.values_list("member_id", "event_id").annotate(n=Sum("points")).order_by()
        ):
            state.operator[member_id][event_id] = points
        if pooled_codes:
            earns = ledger.filter(kind=PointTransaction.Kind.EARN).exclude(modifiers=[])
            for member_id, event_id, modifiers in earns.values_list("member_id", "event_id", "modifiers"):
                if any(m.get("code") in pooled_codes for m in modifiers or ()):
                    state.pooled[member_id].add(event_id)
    if "tiers" in checks or "benefits" in checks:
        for member_id, tier_type_id, tier_id in MemberTierAssignment.objects.filter(
            tenant=tenant, member_id__in=members
        ).values_list("member_id", "tier_type_id", "tier_id"):
            state.tiers[member_id][tier_type_id] = tier_id
    if "benefits" in checks:
        grants = MemberBenefit.objects.filter(tenant=tenant, member_id__in=members, source=MemberBenefit.Source.TIER)
        for member_id, benefit_id, status, reason in grants.values_list("member_id", "benefit_id", "status", "reason"):
            if status == MemberBenefit.Status.ACTIVE:
                state.active[member_id].add(benefit_id)
            elif not (status == MemberBenefit.Status.REVOKED and reason == LOST_REASON):
                state.closed[member_id].add(benefit_id)
    return state

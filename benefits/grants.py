"""Tier benefits granted and revoked as tiers change (``sync_tier_benefits``, after every tier change or
on demand), limited quantities never oversold (``grant_benefit``), and the catalog and criteria judge
the campaign and event-code grants share.

Choice where DOMAIN.md is silent (tested in tests/benefits/test_member_operations.py): a tier benefit
whose grant was used up, expired or revoked by hand is not granted again while the member keeps holding
a tier that gives it; it is granted afresh once the member lost such a tier and regained it (judged from
the member's tier history with the current mappings). A grant revoked by the re-evaluation itself
(``LOST_REASON``: the tier no longer gives it) never holds a new grant back.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F
from django.utils import timezone

from audit.services import record_audit
from benefits import selectors
from benefits.engine import (
    BenefitSpec,
    HeldTier,
    TierMappingSpec,
    entitled_throughout,
    tier_benefits,
)
from benefits.models import (
    Benefit,
    MemberBenefit,
)
from members.models import Member
from outbox.emit import emit
from tenancy.models import Tenant
from tiers.metrics import daily_metrics
from tiers.models import MemberTierAssignment, MemberTierChange, Tier
from tiers.scope import criteria_hold
from tiers.selectors import member_snapshot

# The reason the re-evaluation writes on a grant it revokes because no held tier gives it any more.
LOST_REASON = "tier no longer gives it"


def benefit_catalog(tenant: Tenant) -> dict[int, BenefitSpec]:
    """The tenant's benefits as the engine reads them (cached per configuration version)."""
    return selectors.benefit_catalog(tenant=tenant)


def _take_one(benefit: Benefit) -> bool:
    """Count a grant against a limited quantity with one conditional update: never oversold. An
    unlimited benefit is not counted: its row would be a hot spot every grant of every member
    serialises on, for a number nobody checks (``save_benefit`` counts the grants when a limit is set)."""
    if benefit.total_quantity is None:
        return True
    return bool(
        Benefit.objects.filter(pk=benefit.pk, granted_count__lt=F("total_quantity")).update(
            granted_count=F("granted_count") + 1
        )
    )


def grant_benefit(
    *,
    tenant: Tenant,
    member: Member,
    benefit: Benefit,
    source: str,
    source_ref: str,
    actor: Any,
    now: datetime,
    reason: str = "",
) -> MemberBenefit | None:
    """Grant one benefit (caller holds the member's lock): None when a limited quantity is exhausted.
    Temporary benefits expire ``duration_days`` after the grant or at ``valid_until``."""
    if not _take_one(benefit):
        return None
    expires = None
    if benefit.lifetime == Benefit.Lifetime.TEMPORARY:
        ends = [
            t
            for t in (
                benefit.valid_until,
                now + timedelta(days=benefit.duration_days or 0) if benefit.duration_days else None,
            )
            if t is not None
        ]
        expires = min(ends) if ends else None
    grant = MemberBenefit.objects.create(
        tenant=tenant,
        member=member,
        benefit=benefit,
        source=source,
        source_ref=source_ref,
        granted_at=now,
        expires_at=expires,
        reason=reason,
    )
    record_audit(
        tenant=tenant,
        actor=actor,
        action="benefit.granted",
        target=grant,
        member_id=member.external_id,
        after={"benefit": benefit.code, "source": source, "source_ref": source_ref},
        reason=reason,
    )
    emit(
        tenant=tenant,
        type="benefit.applied",
        member_id=member.external_id,
        occurred_at=now,
        data={
            "grant": grant.pk,
            "benefit": benefit.code,
            "source": source,
            "source_ref": source_ref,
            "expires_at": expires,
        },
    )
    return grant


def revoke_grant(
    *, tenant: Tenant, grant: MemberBenefit, actor: Any, now: datetime, reason: str, action: str = "benefit.revoked"
) -> None:
    """Close the grant as revoked, audited as ``action`` and announced as ``benefit.revoked``."""
    MemberBenefit.objects.filter(pk=grant.pk).update(status=MemberBenefit.Status.REVOKED, closed_at=now, reason=reason)
    record_audit(
        tenant=tenant,
        actor=actor,
        action=action,
        target=grant,
        member_id=grant.member.external_id,
        before={"status": grant.status},
        after={"status": "revoked"},
        reason=reason,
    )
    emit(
        tenant=tenant,
        type="benefit.revoked",
        member_id=grant.member.external_id,
        occurred_at=now,
        data={"grant": grant.pk, "benefit": grant.benefit.code, "source": grant.source, "reason": reason},
    )


def _held_before(*, tenant: Tenant, held: list[HeldTier], before: Mapping[str, str | None]) -> list[HeldTier]:
    """The tiers held before a change: ``held`` with each changed tier type back at its former tier."""
    tiers = list(Tier.objects.filter(tenant=tenant, tier_type__code__in=list(before)).select_related("tier_type"))
    changed = {t.tier_type_id for t in tiers}
    out = [h for h in held if h.tier_type_id not in changed]
    out.extend(
        HeldTier(t.pk, t.tier_type_id, t.rank, t.code, t.tier_type.priority)
        for t in tiers
        if before.get(t.tier_type.code) == t.code
    )
    return out


def tier_inputs(
    *, tenant: Tenant, member: Member, now: datetime
) -> tuple[dict[int, BenefitSpec], list[HeldTier], list[TierMappingSpec], Callable[[tuple], bool]]:
    """What the engine needs about the member's tier benefits: catalog, held tiers, mappings, and the
    judge of conditional criteria (on the member's metrics, read only when a benefit is conditional)."""
    catalog = benefit_catalog(tenant)
    held = [
        HeldTier(a.tier_id, a.tier_type_id, a.tier.rank, a.tier.code, a.tier_type.priority)
        for a in MemberTierAssignment.objects.filter(member=member).select_related("tier", "tier_type")
    ]
    mappings = selectors.tier_mapping_specs(tenant=tenant)
    return catalog, held, mappings, criteria_judge(tenant=tenant, member=member, now=now)


def criteria_judge(*, tenant: Tenant, member: Member, now: datetime) -> Callable[[tuple], bool]:
    """Whether criteria (DOMAIN §3.3) hold for the member now: of a conditional benefit, a campaign
    mapping. The member's metrics are read on the first question only."""
    tz = ZoneInfo(tenant.timezone)
    loaded: dict[str, Any] = {}

    def holds(criteria: tuple) -> bool:
        if not loaded:
            loaded["metrics"] = daily_metrics(member=member, since=(now - timedelta(days=3660)).date())
            loaded["member"] = member_snapshot(member)
        return criteria_hold(criteria, metrics=loaded["metrics"], member=loaded["member"], now=now, tz=tz)

    return holds


def received_during_entitlement(
    *,
    member: Member,
    benefit_ids: Iterable[int],
    catalog: dict[int, BenefitSpec],
    held: list[HeldTier],
    mappings: list[TierMappingSpec],
    now: datetime,
) -> dict[int, MemberBenefit]:
    """Benefit id → the member's closed tier grant (used up, expired, revoked by hand) received while
    they have held, ever since, a tier giving it: such a benefit is not granted again (module docstring).
    The tier states since then are rebuilt from the member's tier history, newest first."""
    ids = set(benefit_ids)
    if not ids:
        return {}
    latest: dict[int, MemberBenefit] = {}
    closed = (
        MemberBenefit.objects.filter(member=member, source=MemberBenefit.Source.TIER, benefit_id__in=ids)
        .exclude(status=MemberBenefit.Status.ACTIVE)
        .order_by("benefit_id", "-granted_at", "-id")
    )
    for grant in closed:
        latest.setdefault(grant.benefit_id, grant)
    holding = {
        benefit_id: grant
        for benefit_id, grant in latest.items()
        if not (grant.status == MemberBenefit.Status.REVOKED and grant.reason == LOST_REASON)
    }
    if not holding:
        return {}
    since = min(grant.granted_at for grant in holding.values())
    changes = MemberTierChange.objects.filter(member=member, at__gt=since).select_related("tier_type", "from_tier")
    state = {h.tier_type_id: h for h in held}
    timeline: list[tuple[datetime, list[HeldTier]]] = []  # (change time, tiers held right after it)
    for change in changes.order_by("-at", "-id"):
        timeline.append((change.at, list(state.values())))
        state = dict(state)
        if change.from_tier is None:
            state.pop(change.tier_type_id, None)
        else:
            tier = change.from_tier
            state[change.tier_type_id] = HeldTier(
                tier.pk, change.tier_type_id, tier.rank, tier.code, change.tier_type.priority
            )
    return {
        benefit_id: grant
        for benefit_id, grant in holding.items()
        if entitled_throughout(
            benefit_id=benefit_id,
            catalog=catalog,
            mappings=mappings,
            states=[tiers for at, tiers in timeline if at > grant.granted_at],
            now=now,
        )
    }


def sync_tier_benefits(
    *,
    tenant: Tenant,
    member: Member,
    actor: Any,
    now: datetime | None = None,
    held_before: Mapping[str, str | None] | None = None,
) -> dict[str, list]:
    """After a tier change (same transaction, member locked): grant the tier benefits the member should
    hold and lacks, revoke those they no longer should unless ``retain_on_loss``, never duplicating a
    grant nor handing out again one used up, expired or revoked while still entitled (module docstring).
    Returns ``{"granted": [codes], "revoked": [codes], "exhausted": [codes]}``.

    ``held_before`` (tier type code → the tier code held before the change, None for none) keeps
    ``exhausted`` to what the change concerns: a benefit the change entitles the member to whose
    limited quantity is all granted. One they were entitled to before, and could not get then either,
    is no news on every later change."""
    now = now or timezone.now()
    catalog, held, mappings, holds = tier_inputs(tenant=tenant, member=member, now=now)
    wanted = tier_benefits(catalog=catalog, mappings=mappings, held=held, now=now, criteria_hold=holds)
    entitled_before: set[int] | None = None
    if held_before is not None:
        before = _held_before(tenant=tenant, held=held, before=held_before)
        entitled_before = set(
            tier_benefits(catalog=catalog, mappings=mappings, held=before, now=now, criteria_hold=holds)
        )
    current = {
        g.benefit_id: g
        for g in MemberBenefit.objects.filter(
            member=member, source=MemberBenefit.Source.TIER, status=MemberBenefit.Status.ACTIVE
        ).select_related("benefit", "member")
    }
    received = received_during_entitlement(
        member=member, benefit_ids=set(wanted) - set(current), catalog=catalog, held=held, mappings=mappings, now=now
    )
    outcome: dict[str, list] = {"granted": [], "revoked": [], "exhausted": []}
    benefits = {b.pk: b for b in Benefit.objects.filter(pk__in=set(wanted) - set(current) - set(received))}
    for benefit_id, entitlement in sorted(wanted.items()):
        if benefit_id in current or benefit_id in received:
            continue
        benefit = benefits[benefit_id]
        grant = grant_benefit(
            tenant=tenant,
            member=member,
            benefit=benefit,
            source=MemberBenefit.Source.TIER,
            source_ref=entitlement.source_ref,
            actor=actor,
            now=now,
            reason=f"tier {entitlement.source_ref}" + (f" via {', '.join(entitlement.via)}" if entitlement.via else ""),
        )
        if grant is not None:
            outcome["granted"].append(benefit.code)
        elif entitled_before is None or benefit_id not in entitled_before:
            outcome["exhausted"].append(benefit.code)
    for benefit_id, grant in sorted(current.items()):
        if benefit_id not in wanted and not grant.benefit.retain_on_loss:
            revoke_grant(tenant=tenant, grant=grant, actor=actor, now=now, reason=LOST_REASON)
            outcome["revoked"].append(grant.benefit.code)
    return outcome

"""Writes of the benefits context: the catalog, tier and campaign mappings, event codes — validated,
audited and bumping ``config_version`` through ``tenancy.services``.

And members' grants: tier benefits granted and revoked after every tier change
(``sync_tier_benefits``, or on demand: ``apply_benefits``), limited quantities never oversold; claims
(``use_grant``), the periodic expiry (``expire_grants``), an admin's revocation
(``revoke_member_grant``) and the explanation of one benefit (``benefit_eligibility``). Campaign grants
and code redemption live in ``benefits.campaigns`` and ``events.event_codes``.

Choices where DOMAIN.md is silent (tested in tests/benefits/test_member_operations.py):

* A tier benefit whose grant was used up, expired or revoked by hand is not granted again while the
  member keeps holding a tier that gives it; it is granted afresh once the member lost such a tier and
  regained it (judged from the member's tier history with the current mappings). A grant revoked by the
  re-evaluation itself (``LOST_REASON``: the tier no longer gives it) never holds a new grant back.
* Claims, expiry, revocation and re-evaluation of one member take the member's lock first (the same
  lock order as every tier and point write), and each effect is one conditional UPDATE on the grant's
  status, so a claim past the limit, a second expiry or a double revocation changes nothing.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
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
from benefits.engine import benefit_eligibility as explain_eligibility
from benefits.models import (
    Benefit,
    CampaignBenefitMapping,
    EventCode,
    EventCodeRedemption,
    MemberBenefit,
    TierBenefitMapping,
)
from config.errors import Conflict, Invalid, NotFound
from members.errors import MemberErased
from members.locks import lock_member
from members.models import Member
from outbox.emit import emit
from tenancy.models import Tenant
from tenancy.services import delete_config, save_config
from tiers.metrics import daily_metrics
from tiers.models import MemberTierAssignment, MemberTierChange, Tier
from tiers.scope import criteria_hold
from tiers.selectors import member_snapshot

# The reason the re-evaluation writes on a grant it revokes because no held tier gives it any more.
LOST_REASON = "tier no longer gives it"
EXPIRY_ACTOR = "system:expire_grants"


class GrantNotFound(NotFound):
    code = "benefit_grant_not_found"
    default_detail = "The member has no benefit grant with this id."


class BenefitUsedUp(Conflict):
    code = "benefit_used_up"
    default_detail = "This grant has no uses left."


class BenefitNotActive(Conflict):
    code = "benefit_not_active"
    default_detail = "This grant is no longer active."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@transaction.atomic
def save_benefit(
    *, tenant: Tenant, benefit: Benefit, actor: Any, components: Iterable[Benefit] | None = None
) -> Benefit:
    """Create or update a catalog benefit; ``components`` (a bundle's contents) replace the current
    ones when given: benefits of the tenant, never the bundle itself."""
    parts = list(components) if components is not None else None
    if parts is not None:
        errors = []
        if any(p.tenant_id != tenant.pk for p in parts):
            errors.append("Benefits of another tenant.")
        if benefit.pk is not None and any(p.pk == benefit.pk for p in parts):
            errors.append("A bundle cannot contain itself.")
        if errors:
            raise Invalid(errors={"components": errors})
    if benefit.pk is not None:  # granted_count is the granting code's: keep its current value
        stored = Benefit.objects.select_for_update().get(pk=benefit.pk)
        benefit.granted_count = stored.granted_count
        if stored.total_quantity is None and benefit.total_quantity is not None:
            # Unlimited benefits are not counted (_take_one); a limit set now starts from the grants made.
            benefit.granted_count = MemberBenefit.objects.filter(benefit=stored).count()

    def contents(saved: Benefit) -> None:
        if parts is not None:
            saved.components.set(parts)

    return save_config(tenant=tenant, instance=benefit, actor=actor, related=contents)


@transaction.atomic
def delete_benefit(*, tenant: Tenant, benefit: Benefit, actor: Any) -> None:
    holders = []
    if n := MemberBenefit.objects.filter(benefit=benefit).count():
        holders.append(f"granted {_plural(n, 'time')}")
    if n := TierBenefitMapping.objects.filter(benefit=benefit).count():
        holders.append(f"mapped to {_plural(n, 'tier')}")
    if n := CampaignBenefitMapping.objects.filter(benefit=benefit).count():
        holders.append(f"mapped to {_plural(n, 'campaign')}")
    if n := EventCode.objects.filter(benefit=benefit).count():
        holders.append(f"given by {_plural(n, 'event code')}")
    if n := benefit.bundles.count():
        holders.append(f"part of {_plural(n, 'bundle')}")
    delete_config(tenant=tenant, instance=benefit, actor=actor, holders=holders)


@transaction.atomic
def create_from_template(*, tenant: Tenant, template: Benefit, code: str, name: str, actor: Any) -> Benefit:
    """A new (non-template) benefit copied from a template, its bundle contents included."""
    if not template.is_template:
        raise Invalid(errors={"template": [f"{template.code} is not a template."]})
    copy = Benefit(
        tenant=tenant,
        code=code,
        name=name or template.name,
        type=template.type,
        value=template.value,
        lifetime=template.lifetime,
        duration_days=template.duration_days,
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        criteria=template.criteria,
        usage_limit=template.usage_limit,
        total_quantity=template.total_quantity,
        exclusive_group=template.exclusive_group,
        priority=template.priority,
        retain_on_loss=template.retain_on_loss,
        description=template.description,
    )
    return save_benefit(tenant=tenant, benefit=copy, actor=actor, components=list(template.components.all()))


@transaction.atomic
def assign_tier_benefit(
    *, tenant: Tenant, tier: Tier, benefit: Benefit, actor: Any, inheritable: bool = True
) -> TierBenefitMapping:
    """Map a benefit to a tier (or change whether the mapping is inherited up the ladder)."""
    if tier.tenant_id != tenant.pk or benefit.tenant_id != tenant.pk:
        raise Invalid(errors={"benefit": ["Not a benefit of this tenant."]})
    mapping = TierBenefitMapping.objects.filter(tier=tier, benefit=benefit).first() or TierBenefitMapping(
        tier=tier, benefit=benefit
    )
    mapping.inheritable = inheritable
    return save_config(tenant=tenant, instance=mapping, actor=actor)


@transaction.atomic
def unassign_tier_benefit(*, tenant: Tenant, mapping: TierBenefitMapping, actor: Any) -> None:
    delete_config(tenant=tenant, instance=mapping, actor=actor, holders=[])


@transaction.atomic
def assign_campaign_benefit(
    *, tenant: Tenant, campaign_code: str, benefit: Benefit, actor: Any, criteria: list | None = None
) -> CampaignBenefitMapping:
    if benefit.tenant_id != tenant.pk:
        raise Invalid(errors={"benefit": ["Not a benefit of this tenant."]})
    mapping = CampaignBenefitMapping.objects.filter(
        tenant=tenant, campaign_code=campaign_code, benefit=benefit
    ).first() or CampaignBenefitMapping(campaign_code=campaign_code, benefit=benefit)
    mapping.criteria = criteria or []
    return save_config(tenant=tenant, instance=mapping, actor=actor)


@transaction.atomic
def unassign_campaign_benefit(*, tenant: Tenant, mapping: CampaignBenefitMapping, actor: Any) -> None:
    delete_config(tenant=tenant, instance=mapping, actor=actor, holders=[])


@transaction.atomic
def save_event_code(*, tenant: Tenant, event_code: EventCode, actor: Any) -> EventCode:
    """Codes are matched case-insensitively: stored in capitals, unique per tenant in that form. The
    tier or benefit it gives must be the tenant's (and a benefit not a template)."""
    event_code.code = (event_code.code or "").strip().upper()
    errors: dict[str, list[str]] = {}
    tier = event_code.tier if event_code.tier_id is not None else None
    benefit = event_code.benefit if event_code.benefit_id is not None else None
    if tier is not None and tier.tenant_id != tenant.pk:
        errors["tier"] = ["A tier of another tenant."]
    if benefit is not None and benefit.tenant_id != tenant.pk:
        errors["benefit"] = ["A benefit of another tenant."]
    elif benefit is not None and benefit.is_template:
        errors["benefit"] = ["A template is never granted; create a benefit from it first."]
    if errors:
        raise Invalid(errors=errors)
    if event_code.pk is not None:  # the redemption counter is the redeeming code's
        event_code.redemptions = EventCode.objects.select_for_update().get(pk=event_code.pk).redemptions
    return save_config(tenant=tenant, instance=event_code, actor=actor)


@transaction.atomic
def delete_event_code(*, tenant: Tenant, event_code: EventCode, actor: Any) -> None:
    holders = []
    if n := EventCodeRedemption.objects.filter(event_code=event_code).count():
        holders.append(f"redeemed {_plural(n, 'time')}")
    delete_config(tenant=tenant, instance=event_code, actor=actor, holders=holders)


# --- grants ---------------------------------------------------------------------------------------
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


def revoke_grant(*, tenant: Tenant, grant: MemberBenefit, actor: Any, now: datetime, reason: str) -> None:
    MemberBenefit.objects.filter(pk=grant.pk).update(status=MemberBenefit.Status.REVOKED, closed_at=now, reason=reason)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="benefit.revoked",
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


def _tier_inputs(
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


def _received_during_entitlement(
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
    catalog, held, mappings, holds = _tier_inputs(tenant=tenant, member=member, now=now)
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
    received = _received_during_entitlement(
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


# --- a member's grants: re-evaluation, eligibility, claims, revocation, expiry ----------------------
def _refuse_erased(member: Member) -> None:
    if member.status == Member.Status.ERASED:
        raise MemberErased()


@transaction.atomic
def apply_benefits(*, tenant: Tenant, member: Member, actor: Any) -> dict[str, list]:
    """``POST /member/{id}/benefit/apply``: re-evaluate the member's tier benefits now, under the
    member's lock, and apply the outcome (``sync_tier_benefits``). An erased member is refused (409)."""
    member = lock_member(member)
    _refuse_erased(member)
    return sync_tier_benefits(tenant=tenant, member=member, actor=actor)


def benefit_eligibility(*, tenant: Tenant, member: Member, benefit: Benefit, now: datetime) -> dict[str, Any]:
    """Would ``apply_benefits`` grant ``benefit`` to the member now, and if not, why not (each reason
    with a stable code, ``benefits.engine.ELIGIBILITY_REASONS``)? Reads only."""
    catalog, held, mappings, holds = _tier_inputs(tenant=tenant, member=member, now=now)
    active = MemberBenefit.objects.filter(
        member=member, benefit=benefit, source=MemberBenefit.Source.TIER, status=MemberBenefit.Status.ACTIVE
    ).exists()
    received = (
        {}
        if active
        else _received_during_entitlement(
            member=member, benefit_ids=[benefit.pk], catalog=catalog, held=held, mappings=mappings, now=now
        )
    )
    counts = Benefit.objects.filter(pk=benefit.pk).values("granted_count", "total_quantity").get()
    verdict = explain_eligibility(
        benefit_id=benefit.pk,
        catalog=catalog,
        mappings=mappings,
        held=held,
        now=now,
        criteria_hold=holds,
        active_grant=active,
        closed_grant_status=received[benefit.pk].status if benefit.pk in received else None,
        exhausted=counts["total_quantity"] is not None and counts["granted_count"] >= counts["total_quantity"],
    )
    return {
        "benefit": benefit.code,
        "eligible": verdict.eligible,
        "reasons": [{"code": r.code, "detail": r.detail} for r in verdict.reasons],
        "tier": verdict.source_ref,
        "via": list(verdict.via),
    }


def get_member_grant(*, tenant: Tenant, member: Member, grant_id: int) -> MemberBenefit:
    """One of the member's grants (any status); another member's or tenant's is not found (404)."""
    grant = (
        MemberBenefit.objects.filter(pk=grant_id, tenant=tenant, member=member)
        .select_related("benefit", "member")
        .first()
    )
    if grant is None:
        raise GrantNotFound()
    return grant


def _remaining(uses: int, limit: int | None) -> int | None:
    return None if limit is None else max(limit - uses, 0)


@transaction.atomic
def use_grant(*, tenant: Tenant, grant: MemberBenefit, actor: Any, now: datetime) -> MemberBenefit:
    """Claim one use of a grant (DOMAIN §5), under the member's lock: one conditional UPDATE counts the
    use only while the grant is active, not past ``expires_at`` and under the benefit's
    ``usage_limit``, and closes it as ``used_up`` (``closed_at`` = ``now``) in the same statement when
    that use is the last. Refused with 409 ``benefit_used_up`` when no use is left, 409
    ``benefit_not_active`` when the grant expired or was revoked. Audited, announced as
    ``benefit.used``. Returns the grant as updated."""
    member = lock_member(grant.member)
    _refuse_erased(member)
    limit = Benefit.objects.filter(pk=grant.benefit_id).values_list("usage_limit", flat=True).get()
    claim = MemberBenefit.objects.filter(pk=grant.pk, tenant=tenant, status=MemberBenefit.Status.ACTIVE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    changes: dict[str, Any] = {"uses": F("uses") + 1}
    if limit is not None:
        claim = claim.filter(uses__lt=limit)
        last = Q(uses__gte=limit - 1)  # SET sees the row before the update: this use is the last
        changes["status"] = Case(When(last, then=Value(MemberBenefit.Status.USED_UP)), default=F("status"))
        changes["closed_at"] = Case(When(last, then=Value(now)), default=F("closed_at"))
    if not claim.update(**changes):
        current = MemberBenefit.objects.get(pk=grant.pk)
        if current.status in (MemberBenefit.Status.EXPIRED, MemberBenefit.Status.REVOKED):
            raise BenefitNotActive(f"This grant is {current.status}.")
        if (
            current.status == MemberBenefit.Status.ACTIVE
            and current.expires_at is not None
            and current.expires_at <= now
        ):
            raise BenefitNotActive(f"This grant expired at {current.expires_at.isoformat()}.")
        raise BenefitUsedUp(
            f"This grant has no uses left ({current.uses} of {limit} used)." if limit is not None else None
        )
    used = MemberBenefit.objects.select_related("benefit", "member").get(pk=grant.pk)
    remaining = _remaining(used.uses, limit)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="benefit.used",
        target=used,
        member_id=member.external_id,
        before={"uses": used.uses - 1, "status": MemberBenefit.Status.ACTIVE.value},
        after={"uses": used.uses, "status": used.status},
    )
    emit(
        tenant=tenant,
        type="benefit.used",
        member_id=member.external_id,
        occurred_at=now,
        data={
            "grant": used.pk,
            "benefit": used.benefit.code,
            "uses": used.uses,
            "remaining": remaining,
            "status": used.status,
        },
    )
    return used


@transaction.atomic
def revoke_member_grant(
    *, tenant: Tenant, grant: MemberBenefit, actor: Any, reason: str, now: datetime | None = None
) -> MemberBenefit:
    """Revoke one active grant by hand (the admin's "Revoke…"), under the member's lock, with a
    required reason; audited and announced (``revoke_grant``). A grant that is no longer active is a
    409 ``benefit_not_active``. A tier benefit revoked this way is not granted again while the member
    keeps the tier (module docstring)."""
    if grant.tenant_id != tenant.pk:
        raise GrantNotFound()
    if not reason.strip():
        raise Invalid(errors={"reason": ["A reason is required."]})
    lock_member(grant.member)
    current = MemberBenefit.objects.select_related("benefit", "member").get(pk=grant.pk)
    if current.status != MemberBenefit.Status.ACTIVE:
        raise BenefitNotActive(f"This grant is {current.status}; only an active grant can be revoked.")
    revoke_grant(tenant=tenant, grant=current, actor=actor, now=now or timezone.now(), reason=reason.strip())
    current.refresh_from_db()
    return current


def _skip_locked() -> dict[str, Any]:
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}


def expire_grants(*, now: datetime, limit: int = 1000) -> int:
    """Close the active grants whose ``expires_at`` is at or before ``now`` (the periodic task): status
    ``expired``, ``closed_at`` = their ``expires_at``, an audit entry and a ``benefit.expired`` message
    each. One transaction per tenant's batch, at most ``limit`` grants per call; returns how many were
    closed.

    Members are locked with ``SKIP LOCKED`` where the database has it: two workers split the members
    between them instead of waiting, and a member busy elsewhere is left for the next run. Each close is
    conditional on the grant still being active, so a re-run (or a racing worker) closes nothing twice.
    """
    tenant_ids = list(
        MemberBenefit.objects.filter(status=MemberBenefit.Status.ACTIVE, expires_at__lte=now)
        .order_by("tenant_id")
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    closed = 0
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).order_by("pk"):
        if closed >= limit:
            break
        closed += _expire_tenant_grants(tenant=tenant, now=now, limit=limit - closed)
    return closed


@transaction.atomic
def _expire_tenant_grants(*, tenant: Tenant, now: datetime, limit: int) -> int:
    due = MemberBenefit.objects.filter(tenant=tenant, status=MemberBenefit.Status.ACTIVE, expires_at__lte=now)
    member_ids = sorted(set(due.order_by("expires_at", "pk").values_list("member_id", flat=True)[:limit]))
    locked = list(
        Member.objects.select_for_update(of=("self",), **_skip_locked())
        .filter(pk__in=member_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    grants = due.filter(member_id__in=locked).select_related("benefit", "member").order_by("member_id", "pk")[:limit]
    closed = 0
    for grant in grants:
        if not MemberBenefit.objects.filter(pk=grant.pk, status=MemberBenefit.Status.ACTIVE).update(
            status=MemberBenefit.Status.EXPIRED, closed_at=grant.expires_at
        ):
            continue
        closed += 1
        record_audit(
            tenant=tenant,
            actor=EXPIRY_ACTOR,
            action="benefit.expired",
            target=grant,
            member_id=grant.member.external_id,
            before={"status": MemberBenefit.Status.ACTIVE.value},
            after={"status": MemberBenefit.Status.EXPIRED.value, "expires_at": grant.expires_at},
        )
        emit(
            tenant=tenant,
            type="benefit.expired",
            member_id=grant.member.external_id,
            occurred_at=grant.expires_at,
            data={
                "grant": grant.pk,
                "benefit": grant.benefit.code,
                "source": grant.source,
                "source_ref": grant.source_ref,
                "expires_at": grant.expires_at,
                "uses": grant.uses,
            },
        )
    return closed

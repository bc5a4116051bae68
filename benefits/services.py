"""Writes of the benefits context: the catalog, tier and campaign mappings, event codes — validated,
audited and bumping ``config_version`` through ``tenancy.services``.

And members' tier benefits: granted and revoked after every tier change (``sync_tier_benefits``),
limited quantities never oversold. Claims, expiry, campaign grants and code redemption come with the
rest of issue 6.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import record_audit
from benefits.engine import BenefitSpec, HeldTier, TierMappingSpec, tier_benefits
from benefits.models import (
    Benefit,
    CampaignBenefitMapping,
    EventCode,
    EventCodeRedemption,
    MemberBenefit,
    TierBenefitMapping,
)
from config.errors import Invalid
from events.outbox import emit
from members.models import Member
from tenancy.models import Tenant
from tenancy.services import delete_config, save_config
from tiers.models import MemberTierAssignment, Tier


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
        benefit.granted_count = Benefit.objects.select_for_update().get(pk=benefit.pk).granted_count

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
def _catalog(tenant: Tenant) -> dict[int, BenefitSpec]:
    return {
        b.pk: BenefitSpec(
            id=b.pk,
            code=b.code,
            lifetime=b.lifetime,
            criteria=tuple(b.criteria),
            exclusive_group=b.exclusive_group,
            priority=b.priority,
            component_ids=tuple(c.pk for c in b.components.all()),
            is_template=b.is_template,
            active=b.active,
            valid_from=b.valid_from,
            valid_until=b.valid_until,
        )
        for b in Benefit.objects.filter(tenant=tenant).prefetch_related("components")
    }


def _take_one(benefit: Benefit) -> bool:
    """Count a grant against a limited quantity with one conditional update: never oversold."""
    if benefit.total_quantity is None:
        Benefit.objects.filter(pk=benefit.pk).update(granted_count=F("granted_count") + 1)
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


def sync_tier_benefits(*, tenant: Tenant, member: Member, actor: Any, now: datetime | None = None) -> dict[str, list]:
    """After a tier change (same transaction, member locked): grant the tier benefits the member should
    hold and lacks, revoke those they no longer should unless ``retain_on_loss``, never duplicating a
    grant. Returns ``{"granted": [codes], "revoked": [codes], "exhausted": [codes]}``."""
    from events.metrics import daily_metrics
    from tiers.engine import criteria_hold
    from tiers.selectors import member_snapshot

    now = now or timezone.now()
    tz = ZoneInfo(tenant.timezone)
    catalog = _catalog(tenant)
    held = [
        HeldTier(a.tier_id, a.tier_type_id, a.tier.rank, a.tier.code, a.tier_type.priority)
        for a in MemberTierAssignment.objects.filter(member=member).select_related("tier", "tier_type")
    ]
    mappings = [
        TierMappingSpec(m.tier_id, m.tier.tier_type_id, m.tier.rank, m.benefit_id, m.inheritable, m.tier.code)
        for m in TierBenefitMapping.objects.filter(tenant=tenant).select_related("tier")
    ]
    needs_metrics = any(b.lifetime == "conditional" for b in catalog.values())
    metrics = daily_metrics(member=member, since=(now - timedelta(days=3660)).date()) if needs_metrics else None
    snapshot = member_snapshot(member)

    def holds(criteria: tuple) -> bool:
        if metrics is None:
            return False
        return criteria_hold(criteria, metrics=metrics, member=snapshot, now=now, tz=tz)

    wanted = tier_benefits(catalog=catalog, mappings=mappings, held=held, now=now, criteria_hold=holds)
    current = {
        g.benefit_id: g
        for g in MemberBenefit.objects.filter(
            member=member, source=MemberBenefit.Source.TIER, status=MemberBenefit.Status.ACTIVE
        ).select_related("benefit", "member")
    }
    outcome: dict[str, list] = {"granted": [], "revoked": [], "exhausted": []}
    benefits = {b.pk: b for b in Benefit.objects.filter(pk__in=set(wanted) - set(current))}
    for benefit_id, entitlement in sorted(wanted.items()):
        if benefit_id in current:
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
        outcome["granted" if grant else "exhausted"].append(benefit.code)
    for benefit_id, grant in sorted(current.items()):
        if benefit_id not in wanted and not grant.benefit.retain_on_loss:
            revoke_grant(tenant=tenant, grant=grant, actor=actor, now=now, reason="tier no longer gives it")
            outcome["revoked"].append(grant.benefit.code)
    return outcome

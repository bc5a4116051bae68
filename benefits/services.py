"""Writes of the benefits context's configuration: the catalog, tier and campaign mappings, event codes
— validated, audited and bumping ``config_version`` through ``tenancy.services``. Members' grants live
in ``benefits.grants`` (tier benefits after a tier change) and ``benefits.member_grants`` (claims,
revocation, expiry, eligibility); campaign grants in ``benefits.campaigns`` and code redemption in
``events.event_codes``."""

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from benefits.models import (
    Benefit,
    CampaignBenefitMapping,
    EventCode,
    EventCodeRedemption,
    MemberBenefit,
    TierBenefitMapping,
)
from config.errors import Invalid
from tenancy.models import Tenant
from tenancy.services import delete_config, save_config
from tiers.models import Tier


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

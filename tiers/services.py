"""Writes of the tier context's configuration: ladders (tier types and tiers) and promotion/demotion
rules, each validated, saved, audited and bumping the tenant's ``config_version`` in one transaction
(``tenancy.services.save_config``). Members' tier assignments are written by ``tiers.assignments``."""

from typing import Any

from django.db import transaction

from config.errors import Invalid
from tenancy.models import Tenant
from tenancy.services import delete_config, save_config
from tiers.models import (
    MemberTierAssignment,
    MemberTierChange,
    PromotionRule,
    Tier,
    TierType,
)


# --- configuration --------------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@transaction.atomic
def save_tier_type(*, tenant: Tenant, tier_type: TierType, actor: Any) -> TierType:
    """Create or update a tier type. An active type that has tiers must have a default tier.

    An active type with no tiers yet is allowed (an empty ladder assigns nothing); its first tier must
    then be the default (see :func:`save_tier`).
    """
    if tier_type.active and tier_type.pk:
        tiers = Tier.objects.filter(tier_type=tier_type)
        if tiers.exists() and not tiers.filter(is_default=True).exists():
            raise Invalid(errors={"active": ["Make one of its tiers the default before activating this tier type."]})
    return save_config(tenant=tenant, instance=tier_type, actor=actor)


@transaction.atomic
def delete_tier_type(*, tenant: Tenant, tier_type: TierType, actor: Any) -> None:
    """Delete a tier type and its tiers, unless members hold them, rules reference it, or history names it."""
    holders = []
    if n := MemberTierAssignment.objects.filter(tier_type=tier_type).count():
        holders.append(f"held by {_plural(n, 'member')}")
    if rules := list(PromotionRule.objects.filter(tier_type=tier_type).values_list("code", flat=True)[:5]):
        n = PromotionRule.objects.filter(tier_type=tier_type).count()
        holders.append(f"referenced by {_plural(n, 'promotion rule')} ({', '.join(rules)}{', …' if n > 5 else ''})")
    if n := MemberTierChange.objects.filter(tier_type=tier_type).count():
        holders.append(f"named in {_plural(n, 'tier change')} of member history")
    delete_config(tenant=tenant, instance=tier_type, actor=actor, holders=holders)


@transaction.atomic
def save_tier(*, tenant: Tenant, tier: Tier, actor: Any) -> Tier:
    """Create or update a tier, keeping exactly one default tier per tier type that has tiers.

    Making a tier the default moves the default to it (the previous default stops being one). An
    active tier type's default cannot simply be unset: make another tier the default instead.
    """
    tier_type = TierType.objects.select_for_update().get(pk=tier.tier_type_id, tenant=tenant)
    siblings = Tier.objects.filter(tier_type=tier_type).exclude(pk=tier.pk)
    if siblings.filter(rank=tier.rank).exists():
        raise Invalid(errors={"rank": [f"Rank {tier.rank} is already used in {tier_type.code}."]})
    current_default = siblings.filter(is_default=True).first()
    if not tier.is_default and current_default is None and tier_type.active:
        was_default = tier.pk is not None and Tier.objects.filter(pk=tier.pk, is_default=True).exists()
        if was_default or not siblings.exists():
            raise Invalid(
                errors={
                    "is_default": [
                        "An active tier type needs a default tier: make another tier the default instead."
                        if was_default
                        else "The first tier of an active tier type must be its default."
                    ]
                }
            )
    if tier.is_default and current_default is not None:
        current_default.is_default = False
        save_config(
            tenant=tenant,
            instance=current_default,
            actor=actor,
            reason=f"default moved to {tier.code}",
            unique_scope={"tenant": tenant, "tier_type": tier_type},
        )
    return save_config(
        tenant=tenant, instance=tier, actor=actor, unique_scope={"tenant": tenant, "tier_type": tier_type}
    )


@transaction.atomic
def delete_tier(*, tenant: Tenant, tier: Tier, actor: Any) -> None:
    holders = []
    if n := MemberTierAssignment.objects.filter(tier=tier).count():
        holders.append(f"held by {_plural(n, 'member')}")
    if rules := list(PromotionRule.objects.filter(target_tier=tier).values_list("code", flat=True)[:5]):
        holders.append(f"target of promotion rule(s) {', '.join(rules)}")
    if (
        n := MemberTierChange.objects.filter(from_tier=tier).count()
        + MemberTierChange.objects.filter(to_tier=tier).count()
    ):
        holders.append(f"named in {_plural(n, 'tier change')} of member history")
    if tier.is_default and tier.tier_type.active and Tier.objects.filter(tier_type=tier.tier_type_id).count() > 1:
        holders.append("it is the default tier of an active tier type (make another tier the default first)")
    delete_config(tenant=tenant, instance=tier, actor=actor, holders=holders)


@transaction.atomic
def save_promotion_rule(*, tenant: Tenant, rule: PromotionRule, actor: Any) -> PromotionRule:
    return save_config(tenant=tenant, instance=rule, actor=actor)


@transaction.atomic
def delete_promotion_rule(*, tenant: Tenant, rule: PromotionRule, actor: Any) -> None:
    holders = []
    if n := MemberTierChange.objects.filter(rule=rule).count():
        holders.append(f"it decided {_plural(n, 'tier change')} of member history")
    if n := MemberTierAssignment.objects.filter(rule=rule).count():
        holders.append(f"it is the reason {_plural(n, 'member')} hold their tier")
    delete_config(tenant=tenant, instance=rule, actor=actor, holders=holders)

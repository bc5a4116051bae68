"""The demo program's tier ladders (``manage.py seed_demo``): a hotel-style status ladder and a partner
card, built through the same services the admin uses (so they are audited and history-tracked)."""

from decimal import Decimal
from typing import Any

from tenancy.models import Tenant
from tiers.models import PromotionRule, Tier, TierType
from tiers.services import save_promotion_rule, save_tier, save_tier_type

HOTEL_TIERS = [
    # code, name, rank, multiplier, climbable, immutable
    ("member", "Member", 1, "1.00", True, False),
    ("silver", "Silver Elite", 2, "1.10", True, False),
    ("gold", "Gold Elite", 3, "1.50", True, False),
    ("platinum", "Platinum Elite", 4, "1.80", True, False),
    ("diamond", "Diamond", 5, "2.00", True, False),
]
HOTEL_RULES = [
    # code, target, combinator, criteria
    ("silver-by-stays", "silver", "any", [("quantity:nights", 10), ("quantity:stays", 4)]),
    ("gold-by-stays", "gold", "any", [("quantity:nights", 25), ("quantity:stays", 15), ("spend", 5000)]),
    ("platinum-by-stays", "platinum", "any", [("quantity:nights", 50), ("spend", 12000)]),
    ("diamond-by-stays", "diamond", "all", [("quantity:nights", 75), ("spend", 20000)]),
]
PARTNER_TIERS = [
    ("classic", "Classic", 1, "1.00", True, False),
    ("premier", "Premier", 2, "1.25", True, False),
    ("infinite", "Infinite (invitation only)", 3, "1.50", False, True),
]


def _tier_type(tenant: Tenant, actor: Any, **fields: Any) -> TierType:
    existing = TierType.objects.filter(tenant=tenant, code=fields["code"]).first()
    return existing or save_tier_type(tenant=tenant, tier_type=TierType(**fields), actor=actor)


def _tiers(tenant: Tenant, tier_type: TierType, rows: list[tuple], actor: Any) -> dict[str, Tier]:
    tiers = {}
    for code, name, rank, multiplier, climbable, immutable in rows:
        tier = Tier.objects.filter(tier_type=tier_type, code=code).first() or save_tier(
            tenant=tenant,
            tier=Tier(
                tier_type=tier_type,
                code=code,
                name=name,
                rank=rank,
                is_default=rank == 1,
                point_multiplier=Decimal(multiplier),
                climbable=climbable,
                immutable=immutable,
            ),
            actor=actor,
        )
        tiers[code] = tier
    return tiers


def _rule(tenant: Tenant, actor: Any, **fields: Any) -> PromotionRule:
    existing = PromotionRule.objects.filter(tenant=tenant, code=fields["code"]).first()
    return existing or save_promotion_rule(tenant=tenant, rule=PromotionRule(**fields), actor=actor)


def seed_tiers(tenant: Tenant, actor: Any = "system:seed_demo") -> dict[str, dict[str, Tier]]:
    """Idempotent: what exists (by code) is kept as it is."""
    hotel = _tier_type(
        tenant,
        actor,
        code="hotel",
        name="Hotel status",
        mode="hybrid",
        qualification="calendar_year",
        validity="end_of_next_period",
        grace_days=90,
        demotion_step="to_qualified",
        priority=10,
    )
    hotel_tiers = _tiers(tenant, hotel, HOTEL_TIERS, actor)
    for priority, (code, target, combinator, criteria) in enumerate(HOTEL_RULES, start=1):
        _rule(
            tenant,
            actor,
            code=code,
            name=f"{hotel_tiers[target].name} by stays, nights or spend",
            tier_type=hotel,
            direction="promotion",
            target_tier=hotel_tiers[target],
            combinator=combinator,
            priority=priority * 10,
            status="active",
            criteria=[{"metric": m, "operator": "gte", "value": v} for m, v in criteria],
        )
    partner = _tier_type(
        tenant,
        actor,
        code="partner-card",
        name="Partner credit card",
        mode="dynamic",
        qualification="rolling",
        window_days=365,
        validity="fixed_days",
        validity_days=365,
        grace_days=30,
        demotion_step="one_tier",
        partner="bank-co",
        priority=0,
    )
    partner_tiers = _tiers(tenant, partner, PARTNER_TIERS, actor)
    _rule(
        tenant,
        actor,
        code="premier-by-card-spend",
        name="Premier by card spend",
        tier_type=partner,
        direction="promotion",
        target_tier=partner_tiers["premier"],
        combinator="any",
        priority=10,
        status="active",
        criteria=[{"metric": "spend", "operator": "gte", "value": 3000}],
    )
    _rule(
        tenant,
        actor,
        code="partner-inactivity",
        name="Down one tier after 180 inactive days",
        tier_type=partner,
        direction="demotion",
        target_tier=None,
        combinator="all",
        priority=10,
        status="active",
        criteria=[{"metric": "days_inactive", "operator": "gt", "value": 180}],
    )
    return {"hotel": hotel_tiers, "partner-card": partner_tiers}

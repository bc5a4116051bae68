"""The demo program's points (``manage.py seed_demo``): the way a hotel program earns — 10 points per
currency unit at the hotel tier's multiplier, a partner-card bonus, double points at weekends, and
welcome points."""

from decimal import Decimal
from typing import Any

from points.models import PointConversionRule, PointModifier, PointPolicy
from points.services import save_conversion_rule, save_modifier, save_point_policy
from tenancy.models import Tenant
from tiers.models import TierType


def seed_points(tenant: Tenant, actor: Any = "system:seed_demo") -> None:
    """Idempotent: what exists (by code) is kept as it is."""
    hotel = TierType.objects.filter(tenant=tenant, code="hotel").first()
    if not PointConversionRule.objects.filter(tenant=tenant, code="base").exists():
        save_conversion_rule(
            tenant=tenant,
            actor=actor,
            rule=PointConversionRule(
                code="base",
                name="10 points per USD at the hotel tier's multiplier",
                event_types=["transaction"],
                base="per_amount",
                unit_amount=Decimal("1.00"),
                points_per_unit=10,
                tier_type=hotel,
                group="base",
                cap_per_event=75_000,
            ),
        )
    if not PointConversionRule.objects.filter(tenant=tenant, code="card-bonus").exists():
        save_conversion_rule(
            tenant=tenant,
            actor=actor,
            rule=PointConversionRule(
                code="card-bonus",
                name="2 points per USD paid with the partner card",
                event_types=["transaction"],
                partner="bank-co",
                base="per_amount",
                unit_amount=Decimal("1.00"),
                points_per_unit=2,
                group="partner_bonus",
                cap_per_month=20_000,
            ),
        )
    if not PointModifier.objects.filter(tenant=tenant, code="double-weekend").exists():
        save_modifier(
            tenant=tenant,
            actor=actor,
            modifier=PointModifier(
                code="double-weekend",
                name="Double points on weekend stays",
                multiplier=Decimal(2),
                days_of_week=[5, 6],
                event_types=["transaction"],
            ),
            rules=list(PointConversionRule.objects.filter(tenant=tenant, code="base")),
        )
    if not PointPolicy.objects.filter(tenant=tenant).exists():
        save_point_policy(tenant=tenant, changes={"welcome_points": 500, "cap_per_day": 200_000}, actor=actor)

"""A program with something for a scenario to change, and the scenario body of API.md's example.

``plan``: Acme's hotel ladder (``tests.factories.hotel_ladder``) with its active Gold-by-nights rule, a
draft Gold-at-1-night rule, an active ``base`` conversion rule (10 per 1.00) and a draft ``double`` one
(20 per 1.00), an active ``weekend`` modifier, a draft ``triple`` and an archived ``old`` one.
``foreign``: Globex's ladder with an active and a draft rule. Import the fixtures into a test module.
"""

from decimal import Decimal
from typing import Any

import pytest

from points.models import PointConversionRule, PointModifier
from tests.factories import PromotionRuleFactory, hotel_ladder

ONE_NIGHT = [{"metric": "quantity:nights", "operator": "gte", "value": 1, "window_days": None}]


@pytest.fixture
def plan(tenant: Any, ladder: Any) -> dict[str, Any]:
    hotel, tiers, gold_rule = ladder
    rule = {"tenant": tenant, "base": "per_amount", "unit_amount": Decimal("1.00"), "tier_type": hotel}
    return {
        "hotel": hotel,
        **tiers,
        "gold_rule": gold_rule,
        "draft_rule": PromotionRuleFactory(
            tier_type=hotel, target_tier=tiers["gold"], code="gold-at-1-night", status="draft", criteria=ONE_NIGHT
        ),
        "base": PointConversionRule.objects.create(code="base", points_per_unit=10, status="active", **rule),
        "double": PointConversionRule.objects.create(code="double", points_per_unit=20, status="draft", **rule),
        "weekend": PointModifier.objects.create(
            tenant=tenant, code="weekend", multiplier=Decimal(2), days_of_week=[5, 6], status="active"
        ),
        "triple": PointModifier.objects.create(
            tenant=tenant, code="triple", multiplier=Decimal(3), days_of_week=[5, 6], status="draft"
        ),
        "old": PointModifier.objects.create(tenant=tenant, code="old", multiplier=Decimal(5), status="archived"),
    }


@pytest.fixture
def foreign(other_tenant: Any) -> dict[str, Any]:
    hotel, tiers, gold_rule = hotel_ladder(other_tenant)
    draft = PromotionRuleFactory(tier_type=hotel, target_tier=tiers["gold"], status="draft", criteria=ONE_NIGHT)
    return {"hotel": hotel, **tiers, "gold_rule": gold_rule, "draft_rule": draft}


def scenario_body(plan: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Gold at one night instead of 25, double base points, triple weekends, Silver earning ×1.25."""
    return {
        "code": "gold-10",
        "name": "Gold at 1 night",
        "promotion_rules": {"include": [plan["draft_rule"].pk], "exclude": [plan["gold_rule"].pk]},
        "point_rules": {"include": [plan["double"].pk], "exclude": [plan["base"].pk]},
        "modifiers": {"include": [plan["triple"].pk], "exclude": [plan["weekend"].pk]},
        "tier_overrides": [{"tier": plan["silver"].pk, "point_multiplier": "1.25"}],
        **changes,
    }

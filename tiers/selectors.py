"""Tier reads, always within one tenant."""

from django.db.models import QuerySet

from tenancy.models import Tenant
from tiers.models import PromotionRule, Tier, TierType


def tier_types(*, tenant: Tenant) -> QuerySet[TierType]:
    return TierType.objects.filter(tenant=tenant)


def tiers(*, tenant: Tenant) -> QuerySet[Tier]:
    return Tier.objects.filter(tenant=tenant).select_related("tier_type")


def promotion_rules(*, tenant: Tenant) -> QuerySet[PromotionRule]:
    return PromotionRule.objects.filter(tenant=tenant).select_related("tier_type", "target_tier")


def tier_type_by_code(*, tenant: Tenant, code: str) -> TierType | None:
    return TierType.objects.filter(tenant=tenant, code=code).first()


def tier_by_codes(*, tenant: Tenant, tier_type: TierType, code: str) -> Tier | None:
    return Tier.objects.filter(tenant=tenant, tier_type=tier_type, code=code).select_related("tier_type").first()

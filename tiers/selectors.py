"""Tier reads, always within one tenant."""

from tenancy.models import Tenant
from tiers.models import Tier, TierType


def tier_type_by_code(*, tenant: Tenant, code: str) -> TierType | None:
    return TierType.objects.filter(tenant=tenant, code=code).first()


def tier_by_codes(*, tenant: Tenant, tier_type: TierType, code: str) -> Tier | None:
    return Tier.objects.filter(tenant=tenant, tier_type=tier_type, code=code).select_related("tier_type").first()

"""Reads of the benefits context, always within one tenant."""

from django.db.models import QuerySet

from benefits.engine import BenefitSpec, TierMappingSpec
from benefits.models import Benefit, CampaignBenefitMapping, EventCode, MemberBenefit, TierBenefitMapping
from members.models import Member
from tenancy.models import Tenant

# (tenant id, config_version) → the catalog and tier mappings as the engine reads them. Every catalog or
# mapping write through the services bumps the tenant's config_version, so an entry of another process
# is never served stale; a row written in this process any other way (a shell, a data migration, a
# test) also drops the tenant's entries here (``forget_catalog``, connected in ``benefits.apps``).
_CATALOG_CACHE: dict[tuple[int, int], tuple[dict[int, BenefitSpec], tuple[TierMappingSpec, ...]]] = {}


def benefits(*, tenant: Tenant) -> QuerySet[Benefit]:
    return Benefit.objects.filter(tenant=tenant).prefetch_related("components")


def tier_benefit_mappings(*, tenant: Tenant) -> QuerySet[TierBenefitMapping]:
    return TierBenefitMapping.objects.filter(tenant=tenant).select_related("tier", "benefit")


def campaign_benefit_mappings(*, tenant: Tenant) -> QuerySet[CampaignBenefitMapping]:
    return CampaignBenefitMapping.objects.filter(tenant=tenant).select_related("benefit")


def event_codes(*, tenant: Tenant) -> QuerySet[EventCode]:
    return EventCode.objects.filter(tenant=tenant).select_related("tier", "benefit")


def active_grants(*, member: Member) -> QuerySet[MemberBenefit]:
    return MemberBenefit.objects.filter(member=member, status=MemberBenefit.Status.ACTIVE).select_related("benefit")


def benefit_catalog(*, tenant: Tenant) -> dict[int, BenefitSpec]:
    """The tenant's benefits as the engine reads them (a fresh dict over the cached specs)."""
    return dict(_catalog(tenant)[0])


def tier_mapping_specs(*, tenant: Tenant) -> list[TierMappingSpec]:
    """The tenant's tier → benefit mappings as the engine reads them."""
    return list(_catalog(tenant)[1])


def _catalog(tenant: Tenant) -> tuple[dict[int, BenefitSpec], tuple[TierMappingSpec, ...]]:
    key = (tenant.pk, tenant.config_version)
    if key not in _CATALOG_CACHE:
        catalog = {
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
        mappings = tuple(
            TierMappingSpec(m.tier_id, m.tier.tier_type_id, m.tier.rank, m.benefit_id, m.inheritable, m.tier.code)
            for m in TierBenefitMapping.objects.filter(tenant=tenant).select_related("tier")
        )
        if len(_CATALOG_CACHE) > 256:
            _CATALOG_CACHE.clear()
        _CATALOG_CACHE[key] = (catalog, mappings)
    return _CATALOG_CACHE[key]


def forget_catalog(*, tenant_id: int) -> None:
    """Drop this process's cached catalog of a tenant (any version)."""
    for key in [k for k in _CATALOG_CACHE if k[0] == tenant_id]:
        _CATALOG_CACHE.pop(key, None)

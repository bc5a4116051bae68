"""Reads of the benefits context, always within one tenant."""

from django.db.models import QuerySet

from benefits.models import Benefit, CampaignBenefitMapping, EventCode, MemberBenefit, TierBenefitMapping
from members.models import Member
from tenancy.models import Tenant


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

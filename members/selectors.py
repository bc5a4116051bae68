"""Member reads, always within one tenant."""

from django.db.models import Prefetch, QuerySet

from members.errors import MemberNotFound
from members.models import Member
from tenancy.models import Tenant
from tiers.models import MemberTierAssignment


def members(*, tenant: Tenant) -> QuerySet[Member]:
    """The tenant's members with their current tiers prefetched (one extra query per page)."""
    return Member.objects.filter(tenant=tenant).prefetch_related(
        Prefetch(
            "tier_assignments",
            queryset=MemberTierAssignment.objects.select_related("tier", "tier_type").order_by(
                "-tier_type__priority", "tier_type_id"
            ),
        )
    )


def get_member(*, tenant: Tenant, external_id: str) -> Member:
    """The member with their current tiers prefetched (``member.tier_assignments.all()``, in
    ``member_tiers`` order)."""
    member = members(tenant=tenant).filter(external_id=external_id).first()
    if member is None:
        raise MemberNotFound()
    return member


def find_member(*, tenant: Tenant, external_id: str) -> Member:
    """The member alone, for a write that locks and re-reads them anyway (one statement, no tiers)."""
    member = Member.objects.filter(tenant=tenant, external_id=external_id).first()
    if member is None:
        raise MemberNotFound()
    return member


def member_tiers(*, member: Member) -> list[MemberTierAssignment]:
    return list(
        MemberTierAssignment.objects.filter(member=member)
        .select_related("tier", "tier_type")
        .order_by("-tier_type__priority", "tier_type_id")
    )

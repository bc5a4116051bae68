"""Registration of a member (DOMAIN §2), a workflow across contexts: the member row
(``members.services.create_member``), the default tier of every active tier type, the benefits those
tiers bring and the tenant's welcome points, all in one transaction."""

from typing import Any

from django.db import IntegrityError, transaction

from benefits.grants import sync_tier_benefits
from members.models import Member
from members.services import MemberConflict, Registration, create_member
from points.services import grant_welcome_points
from tenancy.models import Tenant
from tiers.assignments import assign_default_tiers_locked


def register_member(*, tenant: Tenant, registration: Registration, actor: Any) -> tuple[Member, bool]:
    """Register a member, idempotently on ``external_id``: returns ``(member, created)``.

    A repeat with the same details returns the existing member (``created=False``); different details
    are a 409 ``member_conflict``. A new member gets the default tier of every active tier type, the
    tenant's welcome points, an audit entry and a ``member.created`` message, all in one transaction.
    Two concurrent registrations of one ``external_id`` create one member: the loser of the
    unique-constraint race re-reads it.
    """
    registration = registration.normalized()
    registration.validate()
    existing = Member.objects.filter(tenant=tenant, external_id=registration.external_id).first()
    if existing is None:
        try:
            return _create_member(tenant=tenant, registration=registration, actor=actor), True
        except IntegrityError:
            existing = Member.objects.get(tenant=tenant, external_id=registration.external_id)
    if not registration.matches(existing):
        raise MemberConflict()
    return existing, False


@transaction.atomic
def _create_member(*, tenant: Tenant, registration: Registration, actor: Any) -> Member:
    member = create_member(tenant=tenant, registration=registration, actor=actor)
    assign_default_tiers_locked(tenant=tenant, member=member, actor=actor, now=member.registered_at)
    sync_tier_benefits(tenant=tenant, member=member, actor=actor, now=member.registered_at)
    grant_welcome_points(tenant=tenant, member=member, actor=actor)
    return member

"""Read access to tenants."""

from typing import Any

from django.db.models import QuerySet

from tenancy.models import Tenant


def tenant_by_slug(slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug, active=True).first()


def tenants_for_user(user: Any) -> QuerySet[Tenant]:
    """The tenants a staff user may administer: all for a superuser, their memberships otherwise."""
    if not user.is_authenticated or not user.is_active:
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user=user)

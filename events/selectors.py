"""Reads of the events context, always within one tenant."""

from django.db.models import QuerySet

from events.models import MemberEvent
from tenancy.models import Tenant


def member_events(*, tenant: Tenant) -> QuerySet[MemberEvent]:
    return MemberEvent.objects.filter(tenant=tenant).select_related("member")

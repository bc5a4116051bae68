"""The one place members are locked. Every write that reads-then-changes a member's state (tiers,
points, benefits) runs inside a transaction holding the member's row lock, so one member's changes
are serialised while different members proceed in parallel."""

from django.db import transaction

from members.models import Member


def lock_member(member: Member) -> Member:
    """Lock the member's row for the current transaction and return it freshly read."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_member() must run inside a transaction.")
    return Member.objects.select_for_update(of=("self",)).get(pk=member.pk)

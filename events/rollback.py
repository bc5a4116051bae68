"""Rollback (DOMAIN §10, API.md "Rollback"): an operator undoes a member's tier change, and the member's
rollback history. Reversing a point transaction (``points.services.rollback_point_transaction``) and
revoking a benefit grant (``benefits.member_grants.revoke_member_grant``) live with their context; the
tier rollback lives here because it moves a tier *and* re-syncs the tier's benefits.

Choices where DOMAIN.md is silent (tested in tests/events/test_rollback.py):

- **What "the state before a change" is.** The tier the change moved the member from (none: the
  assignment is removed), with the lock and expiry the member had then (the change before it in that
  tier type) when they are still in the future. The engine's granted claims follow
  ``tiers.engine.rolled_back_claims``: undoing a demotion gives the tier back as a manual change would,
  undoing a promotion drops manual claims above the restored tier. Activity is not touched: an automatic
  promotion rolled back while the activity still qualifies is made again by the next evaluation.
- **Refusals, each with its own code**: a rollback cannot itself be rolled back (409
  ``rollback_not_reversible``: make a manual change instead), a change is rolled back at most once (409
  ``already_rolled_back``), returning to the state the member is already in is 409
  ``nothing_to_roll_back``, an erased member's tiers do not move (409 ``member_erased``), and a change
  that is not the member's in that tier type is 404 ``tier_change_not_found``.
- **Audit.** The movement is audited as every tier movement is (``member.tier_changed``), and the
  decision once more as ``tier.rolled_back`` naming the undone change: the per-member history reads
  those ``*.rolled_back`` entries for tiers, points and benefits alike.
"""

from dataclasses import replace
from datetime import datetime
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.selectors import audit_entries
from audit.services import record_audit
from benefits.grants import sync_tier_benefits
from config.errors import Conflict, Invalid, NotFound
from members.errors import MemberErased
from members.locks import lock_member
from members.models import Member
from tenancy.models import Tenant
from tiers.assignments import apply_tier_change, held_until_now, tier_type_spec
from tiers.engine import enroll, rolled_back_claims
from tiers.models import AssignmentSource, MemberTierAssignment, MemberTierChange, TierType
from tiers.selectors import assignment_snapshot

# The audit actions the rollback history is made of, and the kind each is.
ROLLBACK_ACTIONS = {"tier.rolled_back": "tier", "points.rolled_back": "points", "benefit.rolled_back": "benefit"}


class TierChangeNotFound(NotFound):
    code = "tier_change_not_found"
    default_detail = "The member has no such tier change in this tier type."


class RollbackNotReversible(Conflict):
    code = "rollback_not_reversible"
    default_detail = "A rollback cannot be rolled back; make a manual tier change instead."


class AlreadyRolledBack(Conflict):
    code = "already_rolled_back"
    default_detail = "This tier change was already rolled back."


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"
    default_detail = "The member is already in the state before this change."


def _still_ahead(value: datetime | None, now: datetime) -> datetime | None:
    return value if value is not None and value > now else None


@transaction.atomic
def rollback_tier_change(
    *,
    tenant: Tenant,
    member: Member,
    tier_type: TierType,
    reason: str,
    actor: Any,
    change_id: int | None = None,
    now: datetime | None = None,
) -> MemberTierChange:
    """Return the member to their state in ``tier_type`` before the change ``change_id`` (None: the
    latest change of that type), under the member's lock: the tier moved back with source ``rollback``,
    the tier's benefits re-synced, audited twice (the movement and the rollback) and ``tier.changed``
    emitted. Returns the new history row (its ``reverts`` is the undone change)."""
    reason = reason.strip()
    if not reason:
        raise Invalid(errors={"reason": ["Say why the change is rolled back."]})
    now = now or timezone.now()
    member = lock_member(member)
    if member.status == Member.Status.ERASED:
        raise MemberErased()
    changes = MemberTierChange.objects.filter(tenant=tenant, member=member, tier_type=tier_type).order_by("-at", "-id")
    target = (changes if change_id is None else changes.filter(pk=change_id)).select_related("from_tier").first()
    if target is None:
        raise TierChangeNotFound()
    if target.source == AssignmentSource.ROLLBACK:
        raise RollbackNotReversible()
    if MemberTierChange.objects.filter(reverts=target).exists():
        raise AlreadyRolledBack()
    previous = changes.filter(Q(at__lt=target.at) | Q(at=target.at, pk__lt=target.pk)).first()
    lock_until = _still_ahead(previous.lock_until, now) if previous else None
    expires_at = _still_ahead(previous.expires_at, now) if previous else None
    current = MemberTierAssignment.objects.filter(member=member, tier_type=tier_type).select_related("tier").first()
    restored = target.from_tier
    held = (current.tier_id, current.lock_until, current.expires_at) if current else (None, None, None)
    if held == ((restored.pk, lock_until, expires_at) if restored else (None, None, None)):
        raise NothingToRollBack()
    valid_until, granted = None, None
    if restored is not None:
        before = assignment_snapshot(current) if current else enroll(restored.pk, now, AssignmentSource.ROLLBACK)
        spec = tier_type_spec(tenant=tenant, tier_type_id=tier_type.pk)
        if spec is not None:
            tz = ZoneInfo(tenant.timezone)
            claims = rolled_back_claims(spec, before.granted, held[0], restored.pk, now, tz, expires_at)
            after = replace(before, tier_id=restored.pk, granted=claims)
            valid_until = held_until_now(tenant=tenant, member=member, spec=spec, after=after, at=now)
            granted = [c.as_dict() for c in claims]
    change = apply_tier_change(
        tenant=tenant,
        member=member,
        tier_type=tier_type,
        to_tier=restored,
        source=AssignmentSource.ROLLBACK,
        actor=actor,
        reason=reason,
        valid_until=valid_until,
        lock_until=lock_until,
        expires_at=expires_at,
        now=now,
        reverts=target,
    )
    if granted is not None:
        MemberTierAssignment.objects.filter(member=member, tier_type=tier_type).update(granted_claims=granted)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="tier.rolled_back",
        target=target,
        member_id=member.external_id,
        before={"tier_type": tier_type.code, "tier": current.tier.code if current else None},
        after={"tier_type": tier_type.code, "tier": restored.code if restored else None, "change": change.pk},
        reason=reason,
    )
    sync_tier_benefits(tenant=tenant, member=member, actor=actor, now=now)
    return change


class RollbackEntry(TypedDict):
    id: int
    kind: str
    target: int
    reason: str
    actor: str
    at: datetime
    before: Any
    after: Any


def rollback_history(*, tenant: Tenant, member: Member) -> list[RollbackEntry]:
    """The member's rollbacks, newest first: one entry per tier change undone, point transaction
    reversed or benefit grant revoked by an operator (``target`` is the undone object's id)."""
    entries = audit_entries(tenant=tenant).filter(member_id=member.external_id, action__in=list(ROLLBACK_ACTIONS))
    return [
        RollbackEntry(
            id=entry.pk,
            kind=ROLLBACK_ACTIONS[entry.action],
            target=int(entry.target_id),
            reason=entry.reason,
            actor=entry.actor,
            at=entry.at,
            before=entry.before,
            after=entry.after,
        )
        for entry in entries.order_by("-at", "-id")
    ]

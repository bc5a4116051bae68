"""Writes of members' tier assignments: default enrolment, manual changes and invitations, removal, and
the automatic evaluation that promotes and demotes. Each locks the member, changes the assignment,
appends a :class:`MemberTierChange`, audits, re-syncs the tier's benefits and emits ``tier.changed``
in one transaction (``apply_tier_change``). Ladders and rules are configured by ``tiers.services``."""

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from audit.services import describe_actor, record_audit
from benefits.grants import sync_tier_benefits
from config.errors import Conflict, Invalid, NotFound
from config.tracing import current_request_id
from members.errors import MemberErased
from members.locks import lock_member
from members.models import Member
from outbox.emit import emit
from tenancy.models import Tenant
from tiers.claims import grant_claim
from tiers.engine import enroll, evaluate, held_until, settle, with_manual_grant
from tiers.metrics import daily_metrics
from tiers.models import (
    AssignmentSource,
    MemberTierAssignment,
    MemberTierChange,
    PromotionRule,
    Tier,
    TierType,
)
from tiers.progress import metrics_since
from tiers.selectors import assignment_snapshot, member_snapshot, tier_type_specs
from tiers.types import AssignmentSnapshot, DailyMetrics, TierTypeSpec


class TierImmutable(Conflict):
    code = "tier_immutable"
    default_detail = "The member's current tier is immutable: invitations cannot move them out of it."


class InvitationNotUpward(Conflict):
    code = "invitation_not_upward"
    default_detail = "An invitation can only move a member up."


class AssignmentNotFound(NotFound):
    code = "tier_assignment_not_found"
    default_detail = "The member holds no tier in this tier type."


# --- member tier assignments ----------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def apply_tier_change(
    *,
    tenant: Tenant,
    member: Member,
    tier_type: TierType,
    to_tier: Tier | None,
    source: str,
    actor: Any,
    reason: str = "",
    rule: PromotionRule | None = None,
    event_ref: str = "",
    valid_until: datetime | None = None,
    lock_until: datetime | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    reverts: MemberTierChange | None = None,
) -> MemberTierChange:
    """Move ``member`` to ``to_tier`` in ``tier_type`` (None removes the assignment).

    The building block of every tier movement (manual, invitation, automatic, review, rollback). The
    caller holds the member's lock inside its transaction and has checked the movement is allowed.
    Writes the assignment, a :class:`MemberTierChange`, an audit entry and, when the tier actually
    changed, a ``tier.changed`` message.
    """
    now = now or timezone.now()
    assignment = (
        MemberTierAssignment.objects.filter(member=member, tier_type=tier_type)
        .select_related("tier", "tier_type")  # the audit's "before" names both
        .first()
    )
    from_tier = assignment.tier if assignment else None
    before = _assignment_view(assignment)
    if to_tier is None:
        if assignment is not None:
            assignment.delete()
        assignment = None
    elif assignment is None:
        assignment = MemberTierAssignment.objects.create(
            tenant=tenant,
            member=member,
            tier_type=tier_type,
            tier=to_tier,
            source=source,
            rule=rule,
            since=now,
            enrolled_at=now,
            valid_until=valid_until,
            lock_until=lock_until,
            expires_at=expires_at,
        )
    else:
        if assignment.tier_id != to_tier.pk:
            assignment.since = now
        assignment.tier, assignment.source, assignment.rule = to_tier, source, rule
        assignment.valid_until, assignment.lock_until, assignment.expires_at = valid_until, lock_until, expires_at
        assignment.save(
            update_fields=["tier", "source", "rule", "since", "valid_until", "lock_until", "expires_at", "updated_at"]
        )
    change = MemberTierChange.objects.create(
        tenant=tenant,
        member=member,
        tier_type=tier_type,
        from_tier=from_tier,
        to_tier=to_tier,
        source=source,
        reason=reason,
        rule=rule,
        event_ref=event_ref,
        actor=describe_actor(actor),
        at=now,
        valid_until=valid_until,
        lock_until=lock_until,
        expires_at=expires_at,
        correlation_id=current_request_id(),
        reverts=reverts,
    )
    record_audit(
        tenant=tenant,
        actor=actor,
        action="member.tier_changed",
        target=change,
        member_id=member.external_id,
        before=before,
        after=_assignment_view(assignment),
        reason=reason,
    )
    if (from_tier and from_tier.pk) != (to_tier and to_tier.pk):
        emit(
            tenant=tenant,
            type="tier.changed",
            member_id=member.external_id,
            occurred_at=now,
            data={
                "tier_type": tier_type.code,
                "from": from_tier.code if from_tier else None,
                "to": to_tier.code if to_tier else None,
                "from_rank": from_tier.rank if from_tier else None,
                "to_rank": to_tier.rank if to_tier else None,
                "source": source,
                "reason": reason,
                "rule": rule.code if rule else None,
                "valid_until": _iso(valid_until),
                "lock_until": _iso(lock_until),
                "expires_at": _iso(expires_at),
            },
        )
    return change


def _assignment_view(assignment: MemberTierAssignment | None) -> dict[str, Any] | None:
    if assignment is None:
        return None
    return {
        "tier_type": assignment.tier_type.code,
        "tier": assignment.tier.code,
        "source": assignment.source,
        "valid_until": _iso(assignment.valid_until),
        "lock_until": _iso(assignment.lock_until),
        "expires_at": _iso(assignment.expires_at),
    }


def assign_default_tiers_locked(
    *, tenant: Tenant, member: Member, actor: Any, now: datetime | None = None
) -> list[MemberTierChange]:
    """Give the member the default tier of every active tier type they hold nothing in (caller holds the
    member's lock). Idempotent: a type the member already holds a tier in is left alone."""
    held = set(MemberTierAssignment.objects.filter(member=member).values_list("tier_type_id", flat=True))
    defaults = (
        Tier.objects.filter(tenant=tenant, is_default=True, tier_type__active=True)
        .exclude(tier_type_id__in=held)
        .select_related("tier_type")
        .order_by("-tier_type__priority", "tier_type_id")
    )
    return [
        apply_tier_change(
            tenant=tenant,
            member=member,
            tier_type=tier.tier_type,
            to_tier=tier,
            source=AssignmentSource.AUTO,
            actor=actor,
            reason="default tier at enrollment",
            now=now,
        )
        for tier in defaults
    ]


@transaction.atomic
def assign_default_tiers(*, tenant: Tenant, member: Member, actor: Any) -> list[MemberTierChange]:
    """``POST /member/{id}/tier``: assign missing default tiers."""
    member = lock_member(member)
    if member.status == Member.Status.ERASED:
        raise MemberErased()
    changes = assign_default_tiers_locked(tenant=tenant, member=member, actor=actor)
    if changes:
        sync_tier_benefits(tenant=tenant, member=member, actor=actor)
    return changes


@transaction.atomic
def change_member_tier(
    *,
    tenant: Tenant,
    member: Member,
    tier: Tier,
    reason: str,
    actor: Any,
    source: str = AssignmentSource.MANUAL,
    lock_until: datetime | None = None,
    expires_at: datetime | None = None,
) -> MemberTierChange:
    """A manual change or an invitation (DOMAIN §3.4).

    - ``manual``: any tier of the type, even out of an immutable tier (the admin's override).
    - ``invitation`` / ``event_code``: only upward; may target a non-climbable tier; never out of an
      immutable tier.
    - The tier must be assignable now (time-bound tiers), its type active, ``lock_until`` and
      ``expires_at`` in the future. Choosing the tier the member already holds updates its lock and
      expiry (history row and audit, but no ``tier.changed``: the tier did not change).
    """
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    if not reason.strip():
        errors["reason"] = ["A reason is required."]
    if source not in (AssignmentSource.MANUAL, AssignmentSource.INVITATION, AssignmentSource.EVENT_CODE):
        errors["source"] = ["Must be manual or invitation."]
    if not tier.tier_type.active:
        errors["tier_type"] = [f"Tier type {tier.tier_type.code} is not active."]
    if not tier.is_available(now):
        errors["tier"] = [f"Tier {tier.code} is not assignable now (time-bound tier)."]
    if lock_until is not None and lock_until <= now:
        errors["lock_until"] = ["Must be in the future."]
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = ["Must be in the future."]
    if errors:
        raise Invalid(errors=errors)
    member = lock_member(member)
    if member.status == Member.Status.ERASED:
        raise MemberErased()
    current = (
        MemberTierAssignment.objects.filter(member=member, tier_type=tier.tier_type).select_related("tier").first()
    )
    if source != AssignmentSource.MANUAL and current is not None:
        if current.tier.immutable and current.tier_id != tier.pk:
            raise TierImmutable()
        if tier.rank <= current.tier.rank:
            raise InvitationNotUpward(
                f"The member already holds {current.tier.code} (rank {current.tier.rank}); "
                f"{tier.code} (rank {tier.rank}) is not higher."
            )
    granted, valid_until = _manual_grant(
        tenant=tenant, member=member, current=current, tier=tier, at=now, expires_at=expires_at, source=source
    )
    change = apply_tier_change(
        tenant=tenant,
        member=member,
        tier_type=tier.tier_type,
        to_tier=tier,
        source=source,
        actor=actor,
        reason=reason.strip(),
        lock_until=lock_until,
        expires_at=expires_at,
        valid_until=valid_until,
        now=now,
    )
    MemberTierAssignment.objects.filter(member=member, tier_type=tier.tier_type).update(granted_claims=granted)
    sync_tier_benefits(tenant=tenant, member=member, actor=actor, now=now)
    return change


def _manual_grant(
    *,
    tenant: Tenant,
    member: Member,
    current: MemberTierAssignment | None,
    tier: Tier,
    at: datetime,
    expires_at: datetime | None,
    source: str,
) -> tuple[list[dict[str, Any]], datetime | None]:
    """The claims a manual change or invitation leaves the member with (``tiers.claims.grant_claim``:
    the member keeps the tier as if they had qualified for it then, or until ``expires_at``), and the
    ``valid_until`` the engine makes of all their claims (``tiers.engine.held_until``), as the next
    evaluation would set it: known before the change is written, so its history row, audit entry and
    ``tier.changed`` message carry it."""
    before = assignment_snapshot(current) if current is not None else enroll(tier.pk, at, source)
    spec = tier_type_spec(tenant=tenant, tier_type_id=tier.tier_type_id)
    if spec is None:  # not among the active tier types: nothing to claim
        return [c.as_dict() for c in before.granted], None
    tz = ZoneInfo(tenant.timezone)
    granted = with_manual_grant(before.granted, grant_claim(spec, tier.pk, at, tz, expires_at))
    after = replace(before, tier_id=tier.pk, granted=granted)
    return [c.as_dict() for c in granted], held_until_now(tenant=tenant, member=member, spec=spec, after=after, at=at)


def tier_type_spec(*, tenant: Tenant, tier_type_id: int) -> TierTypeSpec | None:
    """The engine's view of one active tier type (None when the type is not active)."""
    return next((s for s in tier_type_specs(tenant=tenant) if s.id == tier_type_id), None)


def held_until_now(
    *, tenant: Tenant, member: Member, spec: TierTypeSpec, after: AssignmentSnapshot, at: datetime
) -> datetime | None:
    """The ``valid_until`` the engine makes of ``after`` (the member's position about to be written) at
    ``at``, on the member's stored activity: what the next evaluation would set, known before the change
    is written so its history row, audit entry and ``tier.changed`` message carry it."""
    tz = ZoneInfo(tenant.timezone)
    metrics = daily_metrics(member=member, since=metrics_since(spec, at, tz, after.enrolled_at))
    return held_until(spec, member_snapshot(member), after, metrics, at, tz)


@transaction.atomic
def remove_member_tier(
    *, tenant: Tenant, member: Member, tier_type: TierType, reason: str, actor: Any
) -> MemberTierChange:
    """``DELETE /member/{id}/tier``: the member no longer holds a tier in this type (reason required)."""
    if not reason.strip():
        raise Invalid(errors={"reason": ["A reason is required."]})
    member = lock_member(member)
    if not MemberTierAssignment.objects.filter(member=member, tier_type=tier_type).exists():
        raise AssignmentNotFound()
    change = apply_tier_change(
        tenant=tenant,
        member=member,
        tier_type=tier_type,
        to_tier=None,
        source=AssignmentSource.MANUAL,
        actor=actor,
        reason=reason.strip(),
    )
    sync_tier_benefits(tenant=tenant, member=member, actor=actor)
    return change


# --- automatic evaluation -------------------------------------------------------------------------
def evaluate_member_tiers(
    *,
    tenant: Tenant,
    member: Member,
    metrics: DailyMetrics,
    now: datetime,
    actor: Any,
    source: str = AssignmentSource.AUTO,
    event_ref: str = "",
    dry_run: bool = False,
    kinds: frozenset[str] | None = None,
    assignments: list[MemberTierAssignment] | None = None,
) -> list[dict[str, Any]]:
    """Run the tier engine for every active tier type and apply its decisions (DOMAIN §3.4).

    The caller holds the member's lock inside its transaction and passes the member's daily metrics
    (``tiers.metrics.daily_metrics``). A tier type the member holds nothing in gets its default tier
    first. ``kinds`` limits which movements are applied (``{"promotion"}`` for the promotion endpoint);
    ``dry_run`` decides without writing. Returns one entry per tier change (applied or, in a dry run,
    proposed): ``{"tier_type", "from", "to", "kind", "rule", "reason", "valid_until"}``.
    ``assignments`` are the member's current ones when the caller has already read them (with ``tier``).
    """
    tz = ZoneInfo(tenant.timezone)
    specs = tier_type_specs(tenant=tenant)
    if assignments is None:
        assignments = list(MemberTierAssignment.objects.filter(member=member).select_related("tier"))
    held = {a.tier_type_id: a for a in assignments}
    snapshot = member_snapshot(member)
    changes: list[dict[str, Any]] = []
    for spec in specs:
        assignment = held.get(spec.id)
        if assignment is None:
            if dry_run:
                continue
            default = Tier.objects.get(pk=spec.default_tier().id)
            apply_tier_change(
                tenant=tenant,
                member=member,
                tier_type=default.tier_type,
                to_tier=default,
                source=source,
                actor=actor,
                reason="default tier at enrollment",
                event_ref=event_ref,
                now=now,
            )
            assignment = MemberTierAssignment.objects.select_related("tier").get(member=member, tier_type_id=spec.id)
        decision = evaluate(spec, snapshot, assignment_snapshot(assignment), metrics, now, tz)
        applies = decision.changed and (kinds is None or decision.kind in kinds)
        rule_code = _rule_code(spec, decision.rule_id)
        if applies:
            changes.append(
                {
                    "tier_type": spec.code,
                    "from": _tier_code(spec, decision.from_tier_id),
                    "to": _tier_code(spec, decision.to_tier_id),
                    "kind": decision.kind,
                    "rule": rule_code,
                    "reason": decision.reason,
                    "valid_until": decision.valid_until,
                }
            )
        if dry_run or (decision.changed and not applies):
            continue  # a movement this call does not make (e.g. a demotion on the promotion endpoint)
        before = assignment_snapshot(assignment)
        after = settle(before, decision, now, source)
        state: dict[str, Any] = {
            "granted_claims": [c.as_dict() for c in after.granted],
            "claims_void_before": after.claims_void_before,
        }
        if applies:
            rule = PromotionRule.objects.filter(pk=decision.rule_id).first() if decision.rule_id else None
            to_tier = Tier.objects.select_related("tier_type").get(pk=decision.to_tier_id)
            apply_tier_change(
                tenant=tenant,
                member=member,
                tier_type=to_tier.tier_type,
                to_tier=to_tier,
                source=source,
                actor=actor,
                reason=decision.reason,
                rule=rule,
                event_ref=event_ref,
                valid_until=decision.valid_until,
                now=now,
            )
            if after.last_rule_demotion_at != before.last_rule_demotion_at:
                state["last_rule_demotion_at"] = after.last_rule_demotion_at  # a demotion rule fired
        else:
            state["valid_until"] = decision.valid_until
        if {key: getattr(assignment, key) for key in state} != state:  # engine state: no history, no message
            MemberTierAssignment.objects.filter(pk=assignment.pk).update(**state)
    return changes


def _tier_code(spec: TierTypeSpec, tier_id: int) -> str | None:
    tier = spec.tier(tier_id)
    return tier.code if tier else None


def _rule_code(spec: TierTypeSpec, rule_id: int | None) -> str | None:
    return next((r.code for r in spec.rules if r.id == rule_id), None)

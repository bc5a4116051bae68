"""A member's grants as the member API and the member pages handle them: re-evaluation
(``apply_benefits``), the explanation of one benefit (``benefit_eligibility``), claims (``use_grant``),
an admin's revocation (``revoke_member_grant``) and the periodic expiry (``expire_grants``).

Choice where DOMAIN.md is silent (tested in tests/benefits/test_member_operations.py): claims, expiry,
revocation and re-evaluation of one member take the member's lock first (the same lock order as every
tier and point write), and each effect is one conditional UPDATE on the grant's status, so a claim past
the limit, a second expiry or a double revocation changes nothing.
"""

from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from audit.services import record_audit
from benefits.engine import benefit_eligibility as explain_eligibility
from benefits.grants import received_during_entitlement, revoke_grant, sync_tier_benefits, tier_inputs
from benefits.models import (
    Benefit,
    MemberBenefit,
)
from config.errors import Conflict, Invalid, NotFound
from members.errors import MemberErased
from members.locks import lock_member
from members.models import Member
from outbox.emit import emit
from tenancy.models import Tenant

EXPIRY_ACTOR = "system:expire_grants"


class GrantNotFound(NotFound):
    code = "benefit_grant_not_found"
    default_detail = "The member has no benefit grant with this id."


class BenefitUsedUp(Conflict):
    code = "benefit_used_up"
    default_detail = "This grant has no uses left."


class BenefitNotActive(Conflict):
    code = "benefit_not_active"
    default_detail = "This grant is no longer active."


def _refuse_erased(member: Member) -> None:
    if member.status == Member.Status.ERASED:
        raise MemberErased()


@transaction.atomic
def apply_benefits(*, tenant: Tenant, member: Member, actor: Any) -> dict[str, list]:
    """``POST /member/{id}/benefit/apply``: re-evaluate the member's tier benefits now, under the
    member's lock, and apply the outcome (``sync_tier_benefits``). An erased member is refused (409)."""
    member = lock_member(member)
    _refuse_erased(member)
    return sync_tier_benefits(tenant=tenant, member=member, actor=actor)


def benefit_eligibility(*, tenant: Tenant, member: Member, benefit: Benefit, now: datetime) -> dict[str, Any]:
    """Would ``apply_benefits`` grant ``benefit`` to the member now, and if not, why not (each reason
    with a stable code, ``benefits.engine.ELIGIBILITY_REASONS``)? Reads only."""
    catalog, held, mappings, holds = tier_inputs(tenant=tenant, member=member, now=now)
    active = MemberBenefit.objects.filter(
        member=member, benefit=benefit, source=MemberBenefit.Source.TIER, status=MemberBenefit.Status.ACTIVE
    ).exists()
    received = (
        {}
        if active
        else received_during_entitlement(
            member=member, benefit_ids=[benefit.pk], catalog=catalog, held=held, mappings=mappings, now=now
        )
    )
    counts = Benefit.objects.filter(pk=benefit.pk).values("granted_count", "total_quantity").get()
    verdict = explain_eligibility(
        benefit_id=benefit.pk,
        catalog=catalog,
        mappings=mappings,
        held=held,
        now=now,
        criteria_hold=holds,
        active_grant=active,
        closed_grant_status=received[benefit.pk].status if benefit.pk in received else None,
        exhausted=counts["total_quantity"] is not None and counts["granted_count"] >= counts["total_quantity"],
    )
    return {
        "benefit": benefit.code,
        "eligible": verdict.eligible,
        "reasons": [{"code": r.code, "detail": r.detail} for r in verdict.reasons],
        "tier": verdict.source_ref,
        "via": list(verdict.via),
    }


def get_member_grant(*, tenant: Tenant, member: Member, grant_id: int) -> MemberBenefit:
    """One of the member's grants (any status); another member's or tenant's is not found (404)."""
    grant = (
        MemberBenefit.objects.filter(pk=grant_id, tenant=tenant, member=member)
        .select_related("benefit", "member")
        .first()
    )
    if grant is None:
        raise GrantNotFound()
    return grant


def _remaining(uses: int, limit: int | None) -> int | None:
    return None if limit is None else max(limit - uses, 0)


@transaction.atomic
def use_grant(*, tenant: Tenant, grant: MemberBenefit, actor: Any, now: datetime) -> MemberBenefit:
    """Claim one use of a grant (DOMAIN §5), under the member's lock: one conditional UPDATE counts the
    use only while the grant is active, not past ``expires_at`` and under the benefit's
    ``usage_limit``, and closes it as ``used_up`` (``closed_at`` = ``now``) in the same statement when
    that use is the last. Refused with 409 ``benefit_used_up`` when no use is left, 409
    ``benefit_not_active`` when the grant expired or was revoked. Audited, announced as
    ``benefit.used``. Returns the grant as updated."""
    member = lock_member(grant.member)
    _refuse_erased(member)
    limit = Benefit.objects.filter(pk=grant.benefit_id).values_list("usage_limit", flat=True).get()
    claim = MemberBenefit.objects.filter(pk=grant.pk, tenant=tenant, status=MemberBenefit.Status.ACTIVE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    changes: dict[str, Any] = {"uses": F("uses") + 1}
    if limit is not None:
        claim = claim.filter(uses__lt=limit)
        last = Q(uses__gte=limit - 1)  # SET sees the row before the update: this use is the last
        changes["status"] = Case(When(last, then=Value(MemberBenefit.Status.USED_UP)), default=F("status"))
        changes["closed_at"] = Case(When(last, then=Value(now)), default=F("closed_at"))
    if not claim.update(**changes):
        current = MemberBenefit.objects.get(pk=grant.pk)
        if current.status in (MemberBenefit.Status.EXPIRED, MemberBenefit.Status.REVOKED):
            raise BenefitNotActive(f"This grant is {current.status}.")
        if (
            current.status == MemberBenefit.Status.ACTIVE
            and current.expires_at is not None
            and current.expires_at <= now
        ):
            raise BenefitNotActive(f"This grant expired at {current.expires_at.isoformat()}.")
        raise BenefitUsedUp(
            f"This grant has no uses left ({current.uses} of {limit} used)." if limit is not None else None
        )
    used = MemberBenefit.objects.select_related("benefit", "member").get(pk=grant.pk)
    remaining = _remaining(used.uses, limit)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="benefit.used",
        target=used,
        member_id=member.external_id,
        before={"uses": used.uses - 1, "status": MemberBenefit.Status.ACTIVE.value},
        after={"uses": used.uses, "status": used.status},
    )
    emit(
        tenant=tenant,
        type="benefit.used",
        member_id=member.external_id,
        occurred_at=now,
        data={
            "grant": used.pk,
            "benefit": used.benefit.code,
            "uses": used.uses,
            "remaining": remaining,
            "status": used.status,
        },
    )
    return used


@transaction.atomic
def revoke_member_grant(
    *, tenant: Tenant, grant: MemberBenefit, actor: Any, reason: str, now: datetime | None = None
) -> MemberBenefit:
    """Revoke one active grant by hand: an operator's rollback of a grant (the admin's "Revoke…", ``POST
    /member/{id}/rollback/benefit``), under the member's lock, with a required reason; audited as
    ``benefit.rolled_back`` (the member's rollback history reads it) and announced as
    ``benefit.revoked``. A grant that is no longer active is a 409 ``benefit_not_active``; an erased
    member's grants are left alone (409 ``member_erased``). A tier benefit revoked this way is not
    granted again while the member keeps the tier (module docstring)."""
    if grant.tenant_id != tenant.pk:
        raise GrantNotFound()
    if not reason.strip():
        raise Invalid(errors={"reason": ["A reason is required."]})
    if lock_member(grant.member).status == Member.Status.ERASED:
        raise MemberErased()
    current = MemberBenefit.objects.select_related("benefit", "member").get(pk=grant.pk)
    if current.status != MemberBenefit.Status.ACTIVE:
        raise BenefitNotActive(f"This grant is {current.status}; only an active grant can be revoked.")
    revoke_grant(
        tenant=tenant,
        grant=current,
        actor=actor,
        now=now or timezone.now(),
        reason=reason.strip(),
        action="benefit.rolled_back",
    )
    current.refresh_from_db()
    return current


def _skip_locked() -> dict[str, Any]:
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}


def expire_grants(*, now: datetime, limit: int = 1000) -> int:
    """Close the active grants whose ``expires_at`` is at or before ``now`` (the periodic task): status
    ``expired``, ``closed_at`` = their ``expires_at``, an audit entry and a ``benefit.expired`` message
    each. One transaction per tenant's batch, at most ``limit`` grants per call; returns how many were
    closed.

    Members are locked with ``SKIP LOCKED`` where the database has it: two workers split the members
    between them instead of waiting, and a member busy elsewhere is left for the next run. Each close is
    conditional on the grant still being active, so a re-run (or a racing worker) closes nothing twice.
    """
    tenant_ids = list(
        MemberBenefit.objects.filter(status=MemberBenefit.Status.ACTIVE, expires_at__lte=now)
        .order_by("tenant_id")
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    closed = 0
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).order_by("pk"):
        if closed >= limit:
            break
        closed += _expire_tenant_grants(tenant=tenant, now=now, limit=limit - closed)
    return closed


@transaction.atomic
def _expire_tenant_grants(*, tenant: Tenant, now: datetime, limit: int) -> int:
    due = MemberBenefit.objects.filter(tenant=tenant, status=MemberBenefit.Status.ACTIVE, expires_at__lte=now)
    member_ids = sorted(set(due.order_by("expires_at", "pk").values_list("member_id", flat=True)[:limit]))
    locked = list(
        Member.objects.select_for_update(of=("self",), **_skip_locked())
        .filter(pk__in=member_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    grants = due.filter(member_id__in=locked).select_related("benefit", "member").order_by("member_id", "pk")[:limit]
    closed = 0
    for grant in grants:
        if not MemberBenefit.objects.filter(pk=grant.pk, status=MemberBenefit.Status.ACTIVE).update(
            status=MemberBenefit.Status.EXPIRED, closed_at=grant.expires_at
        ):
            continue
        closed += 1
        record_audit(
            tenant=tenant,
            actor=EXPIRY_ACTOR,
            action="benefit.expired",
            target=grant,
            member_id=grant.member.external_id,
            before={"status": MemberBenefit.Status.ACTIVE.value},
            after={"status": MemberBenefit.Status.EXPIRED.value, "expires_at": grant.expires_at},
        )
        emit(
            tenant=tenant,
            type="benefit.expired",
            member_id=grant.member.external_id,
            occurred_at=grant.expires_at,
            data={
                "grant": grant.pk,
                "benefit": grant.benefit.code,
                "source": grant.source,
                "source_ref": grant.source_ref,
                "expires_at": grant.expires_at,
                "uses": grant.uses,
            },
        )
    return closed

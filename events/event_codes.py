"""Event-code redemption (DOMAIN §6): a member redeems a code that promotes a tier, grants a benefit or
awards points, atomically and at most as often as the code and the member's limit allow.

:func:`redeem_event_code` runs in one transaction holding the member's lock: look the code up, check
it, consume the code's counter with one conditional UPDATE (so a single-use code redeemed by many
members at once succeeds exactly once), apply the action, and write the redemption row, an audit entry
and an ``event_code.redeemed`` message. Any refusal rolls everything back: the code is not consumed.

Errors (problem+json ``code``), checked in this order:

* ``too_many_attempts`` (429, ``Retry-After``): the member has had ``EVENT_CODE_MAX_FAILURES`` failed
  attempts (default 10) within ``EVENT_CODE_FAILURE_WINDOW`` seconds (default 900) — checked before
  the code is even looked up;
* ``member_not_active`` (409): a suspended or erased member redeems nothing;
* ``code_not_found`` (404), ``code_inactive`` (409), ``code_not_yet_valid`` (409, before
  ``valid_from``), ``code_expired`` (409, from ``valid_until`` on: the end is exclusive),
  ``code_limit_reached`` (409, the member's ``per_member_limit``; checked before the global counter,
  so a member repeating a single-use code they already redeemed is told that, not "exhausted"),
  ``code_exhausted`` (409, ``max_redemptions`` reached);
* what the action refuses, all 409: ``invitation_not_upward`` / ``tier_immutable`` (promote_tier
  follows invitation rules, DOMAIN §3.4), ``tier_unavailable`` (the tier's type is inactive or a
  time-bound tier is outside its window), ``benefit_unavailable`` (inactive, outside its window, a
  template, or a conditional benefit whose criteria do not hold), ``benefit_already_held`` (an active
  event-code grant of it exists), ``benefit_exhausted`` (a limited quantity is used up).

Choices where DOMAIN.md is silent:

* Failed attempts are counted per (tenant, member) in Django's cache in a fixed window that starts at
  the first failure. Only the code failures count (not found, inactive, not yet valid, expired,
  exhausted, limit reached): what a member guessing codes would see. Refusals of the action (tier,
  benefit) and malformed requests do not count, nor does a success (which does not reset the count
  either). If the cache is unreachable, attempts are neither limited nor counted (logged): the code
  checks themselves are in the database and still hold.
* ``promote_tier`` is an invitation with source ``event_code``: only upward, may reach a
  non-climbable tier, never out of an immutable tier; tier benefits are re-synced by
  ``tiers.assignments.change_member_tier`` itself (not twice here). The tier change is timed by that
  service's own clock, not by ``now``.
* ``grant_benefit`` grants like a campaign: a bundle grants its components (each an ``event_code``
  grant with the code as ``source_ref``), all or nothing — one exhausted component refuses the whole
  redemption. Components the member already holds from an event code are skipped; if that leaves
  nothing, the redemption is refused (``benefit_already_held``).
* ``award_points`` writes one ``code`` point transaction of ``points`` (uncapped = points,
  ``occurred_at`` = ``now``) and a ``points.applied`` message. Code points are not qualifying: they
  add to the balance but to no tier metric, and they count against no cap bucket.
"""

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import record_audit
from benefits.engine import campaign_benefits
from benefits.grants import benefit_catalog, criteria_judge, grant_benefit
from benefits.models import Benefit, EventCode, EventCodeRedemption, MemberBenefit
from config.errors import Conflict, DomainError, Invalid, NotFound
from members.errors import MemberNotFound
from members.locks import lock_member
from members.models import Member
from outbox.emit import emit
from points.models import PointTransaction
from points.services import grant_points
from tenancy.models import Tenant
from tiers.assignments import change_member_tier
from tiers.models import AssignmentSource

logger = logging.getLogger("privilege.codes")

DEFAULT_MAX_FAILURES = 10
DEFAULT_FAILURE_WINDOW = 15 * 60  # seconds


# --- errors ---------------------------------------------------------------------------------------
class CodeNotFound(NotFound):
    code = "code_not_found"
    default_detail = "No event code matches."


class CodeInactive(Conflict):
    code = "code_inactive"
    default_detail = "This event code is not active."


class CodeNotYetValid(Conflict):
    code = "code_not_yet_valid"
    default_detail = "This event code is not valid yet."


class CodeExpired(Conflict):
    code = "code_expired"
    default_detail = "This event code has expired."


class CodeExhausted(Conflict):
    code = "code_exhausted"
    default_detail = "This event code has been redeemed as often as it may be."


class CodeLimitReached(Conflict):
    code = "code_limit_reached"
    default_detail = "The member has already redeemed this event code as often as they may."


class MemberNotActive(Conflict):
    code = "member_not_active"
    default_detail = "Only an active member can redeem event codes."


class TierUnavailable(Conflict):
    code = "tier_unavailable"
    default_detail = "The tier this code gives cannot be assigned now."


class BenefitUnavailable(Conflict):
    code = "benefit_unavailable"
    default_detail = "The benefit this code gives cannot be granted now."


class BenefitAlreadyHeld(Conflict):
    code = "benefit_already_held"
    default_detail = "The member already holds the benefit this code gives."


class BenefitExhausted(Conflict):
    code = "benefit_exhausted"
    default_detail = "The benefit this code gives is no longer available: its limited quantity is used up."


class TooManyAttempts(DomainError):
    """429: too many failed attempts; ``Retry-After`` says in how many seconds to try again."""

    status = 429
    code = "too_many_attempts"
    default_detail = "Too many failed event-code attempts; try again later."

    def __init__(self, detail: str | None = None, *, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


# The failures a member guessing codes would see: these count towards the attempt limit.
COUNTED_FAILURES: tuple[type[DomainError], ...] = (
    CodeNotFound,
    CodeInactive,
    CodeNotYetValid,
    CodeExpired,
    CodeExhausted,
    CodeLimitReached,
)


# --- the result -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Redemption:
    """What one redemption did. Exactly one of ``tier_change``, ``grants``, ``points`` is set, after
    ``action``."""

    id: int
    code: str
    action: str
    redeemed_at: datetime
    tier_change: dict[str, Any] | None = None
    grants: list[dict[str, Any]] | None = None
    points: dict[str, Any] | None = None


# --- failed attempts ------------------------------------------------------------------------------
def attempt_limits() -> tuple[int, int]:
    """(failures allowed, window in seconds): ``settings.EVENT_CODE_MAX_FAILURES`` and
    ``settings.EVENT_CODE_FAILURE_WINDOW`` when set, else 10 per 15 minutes."""
    return (
        int(getattr(settings, "EVENT_CODE_MAX_FAILURES", DEFAULT_MAX_FAILURES)),
        int(getattr(settings, "EVENT_CODE_FAILURE_WINDOW", DEFAULT_FAILURE_WINDOW)),
    )


def _failure_keys(tenant: Tenant, member: Member) -> tuple[str, str]:
    base = f"event-code-failures:{tenant.pk}:{member.pk}"
    return base, f"{base}:since"


def _refuse_if_throttled(*, tenant: Tenant, member: Member) -> None:
    limit, window = attempt_limits()
    count_key, since_key = _failure_keys(tenant, member)
    try:
        stored = cache.get_many([count_key, since_key])
    except Exception:  # noqa: BLE001 - any cache backend's error: fail open (module docstring)
        logger.warning("event-code attempt limit unavailable (cache error); not limiting", exc_info=True)
        return
    if int(stored.get(count_key) or 0) < limit:
        return
    since = stored.get(since_key)
    left = window - (time.time() - since) if isinstance(since, int | float) else window
    raise TooManyAttempts(retry_after=max(1, math.ceil(left)))


def _count_failure(*, tenant: Tenant, member: Member) -> None:
    """One more failed attempt, atomically (``add`` opens the window, ``incr`` counts in it)."""
    _, window = attempt_limits()
    count_key, since_key = _failure_keys(tenant, member)
    try:
        if cache.add(count_key, 1, timeout=window):
            cache.set(since_key, time.time(), timeout=window)
            return
        try:
            cache.incr(count_key)
        except ValueError:  # the window closed between add and incr: open a new one
            cache.add(count_key, 1, timeout=window)
            cache.set(since_key, time.time(), timeout=window)
    except Exception:  # noqa: BLE001 - any cache backend's error: fail open (module docstring)
        logger.warning("event-code failure not counted (cache error)", exc_info=True)


# --- redemption -----------------------------------------------------------------------------------
def normalize_code(code: str) -> str:
    """Codes are matched case-insensitively: stored in capitals (``save_event_code``)."""
    return (code or "").strip().upper()


def redeem_event_code(
    *, tenant: Tenant, member: Member, code: str, actor: Any, now: datetime | None = None
) -> Redemption:
    """Redeem ``code`` for ``member`` (see the module docstring for the rules and errors)."""
    now = now or timezone.now()
    _refuse_if_throttled(tenant=tenant, member=member)
    try:
        return _redeem(tenant=tenant, member=member, code=normalize_code(code), actor=actor, now=now)
    except COUNTED_FAILURES:
        _count_failure(tenant=tenant, member=member)
        raise


@transaction.atomic(durable=True)
def _redeem(*, tenant: Tenant, member: Member, code: str, actor: Any, now: datetime) -> Redemption:
    member = lock_member(member)
    if member.tenant_id != tenant.pk:
        raise MemberNotFound()
    if member.status != Member.Status.ACTIVE:
        raise MemberNotActive(f"The member is {member.status}; only an active member can redeem event codes.")
    event_code = (
        EventCode.objects.filter(tenant=tenant, code=code).select_related("tier__tier_type", "benefit").first()
        if code
        else None
    )
    if event_code is None:
        raise CodeNotFound()
    _check(event_code, now)
    if EventCodeRedemption.objects.filter(event_code=event_code, member=member).count() >= event_code.per_member_limit:
        raise CodeLimitReached()
    _consume(event_code)

    if event_code.action == EventCode.Action.PROMOTE_TIER:
        result: dict[str, Any] = {"tier_change": _promote(tenant, member, event_code, actor)}
    elif event_code.action == EventCode.Action.GRANT_BENEFIT:
        result = {"grants": _grant(tenant, member, event_code, actor, now)}
    else:
        result = {"points": _award(tenant, member, event_code, now)}

    redemption = EventCodeRedemption.objects.create(
        tenant=tenant, event_code=event_code, member=member, at=now, result=result
    )
    record_audit(
        tenant=tenant,
        actor=actor,
        action="event_code.redeemed",
        target=redemption,
        member_id=member.external_id,
        after={"code": event_code.code, "action": event_code.action, "result": result},
        reason=f"event code {event_code.code}",
    )
    emit(
        tenant=tenant,
        type="event_code.redeemed",
        member_id=member.external_id,
        occurred_at=now,
        data={"redemption": redemption.pk, "code": event_code.code, "action": event_code.action, "result": result},
    )
    return Redemption(
        id=redemption.pk,
        code=event_code.code,
        action=event_code.action,
        redeemed_at=now,
        tier_change=result.get("tier_change"),
        grants=result.get("grants"),
        points=result.get("points"),
    )


def _check(event_code: EventCode, now: datetime) -> None:
    if not event_code.active:
        raise CodeInactive()
    if event_code.valid_from is not None and now < event_code.valid_from:
        raise CodeNotYetValid(f"This event code is valid from {event_code.valid_from.isoformat()}.")
    if event_code.valid_until is not None and now >= event_code.valid_until:
        raise CodeExpired(f"This event code expired at {event_code.valid_until.isoformat()}.")


def _consume(event_code: EventCode) -> None:
    """Count the redemption on the code with one conditional UPDATE: never more than max_redemptions."""
    codes = EventCode.objects.filter(pk=event_code.pk)
    if event_code.max_redemptions is not None:
        codes = codes.filter(redemptions__lt=F("max_redemptions"))
    if not codes.update(redemptions=F("redemptions") + 1):
        raise CodeExhausted()


def _promote(tenant: Tenant, member: Member, event_code: EventCode, actor: Any) -> dict[str, Any]:
    tier = event_code.tier
    if tier is None:  # EventCode.clean requires one; a row written around it gives nothing
        raise TierUnavailable("This event code names no tier.")
    try:
        change = change_member_tier(
            tenant=tenant,
            member=member,
            tier=tier,
            reason=f"event code {event_code.code}",
            actor=actor,
            source=AssignmentSource.EVENT_CODE,
        )
    except Invalid as exc:  # about the code's tier, not the caller's input
        messages = [str(m) for msgs in (exc.errors or {}).values() for m in msgs]
        raise TierUnavailable(" ".join(messages) or None) from exc
    return {
        "tier_type": tier.tier_type.code,
        "from": change.from_tier.code if change.from_tier else None,
        "to": tier.code,
        "from_rank": change.from_tier.rank if change.from_tier else None,
        "to_rank": tier.rank,
        "change": change.pk,
    }


def _grant(tenant: Tenant, member: Member, event_code: EventCode, actor: Any, now: datetime) -> list[dict[str, Any]]:
    benefit = event_code.benefit
    if benefit is None:  # EventCode.clean requires one; a row written around it gives nothing
        raise BenefitUnavailable("This event code names no benefit.")
    wanted = campaign_benefits(
        catalog=benefit_catalog(tenant),
        mappings=[(benefit.pk, ())],
        campaign_code=event_code.code,
        now=now,
        criteria_hold=criteria_judge(tenant=tenant, member=member, now=now),
    )
    if not wanted:
        raise BenefitUnavailable(f"Benefit {benefit.code} cannot be granted now.")
    held = set(
        MemberBenefit.objects.filter(
            member=member,
            benefit_id__in=wanted,
            source=MemberBenefit.Source.EVENT_CODE,
            status=MemberBenefit.Status.ACTIVE,
        ).values_list("benefit_id", flat=True)
    )
    if held >= set(wanted):
        raise BenefitAlreadyHeld(f"The member already holds {benefit.code} from an event code.")
    benefits = Benefit.objects.in_bulk(set(wanted) - held)
    grants = []
    for benefit_id, entitlement in sorted(wanted.items()):
        if benefit_id in held:
            continue
        granted = grant_benefit(
            tenant=tenant,
            member=member,
            benefit=benefits[benefit_id],
            source=MemberBenefit.Source.EVENT_CODE,
            source_ref=event_code.code,
            actor=actor,
            now=now,
            reason=f"event code {event_code.code}" + (f" via {', '.join(entitlement.via)}" if entitlement.via else ""),
        )
        if granted is None:
            raise BenefitExhausted(f"Benefit {benefits[benefit_id].code} is no longer available.")
        grants.append(
            {
                "id": granted.pk,
                "benefit": benefits[benefit_id].code,
                "expires_at": granted.expires_at,
                "via": list(entitlement.via),
            }
        )
    return grants


def _award(tenant: Tenant, member: Member, event_code: EventCode, now: datetime) -> dict[str, Any]:
    points = event_code.points or 0
    tx = grant_points(
        tenant=tenant,
        member=member,
        kind=PointTransaction.Kind.CODE,
        points=points,
        occurred_at=now,
        note={"code": event_code.code},
    )
    return {"transaction": tx.pk, "points": points}

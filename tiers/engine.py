"""The tier engine: pure evaluation of one member in one tier type (DOMAIN §3.3 to 3.4).

No ORM, no clock, no I/O: configuration, member, assignment and daily metrics come in as snapshots
(``tiers.types``), ``now`` and the tenant's time zone are arguments, and a :class:`TierDecision` comes
out. Live processing and simulation both call :func:`evaluate`.

Choices where DOMAIN.md is silent (each is tested):

* **Day resolution.** Metrics are daily totals in tenant time, so qualification is judged per local day.
  The instant *q* of ``fixed_days`` and ``while_qualified`` is the end of the local day on which the
  member was (last) seen qualified; a claim of ``fixed_days`` lasts until that instant + ``validity_days``.
  Calendar periods, anniversaries and claim ends are exact instants (local midnight), so grace
  boundaries hold to the second: a claim whose end + grace is ``t`` still counts at ``t`` and not after.
* **Claims are derived, not stored.** Each evaluation recomputes the claims earned by promotion rules
  from the metrics, so a late event lands in its own period and a refund that undoes a qualification
  removes the claim (DOMAIN §4.5) — in any arrival order. Only what events cannot tell is stored on
  the assignment: claims granted by manual changes/invitations and soft landings, and the instant
  before which earned claims are void (a demotion rule fired).
* **Rolling windows** end on the evaluated day: the last ``window_days`` local days including it.
  A criterion's own ``window_days`` overrides the window the same way.
* **Rule effectiveness.** A rule earns a claim for a period if it was effective at some time in it
  (for a day: during that day); demotion rules must be effective now.
* **Manual grants.** A manual change or invitation grants a claim on its tier until ``expires_at``
  (exactly, no grace) or, without one, as if the member had qualified at that instant.
* **Demotion rules** (dynamic mode) fire once per situation: after one fired, another fires only after
  the member has had activity since (so "inactive for 180 days" does not drop a tier every day).
* **Soft landing** (``one_tier``): the lower tier gets a claim to the end of the current period; for
  rolling qualification, ``window_days`` after the step.
* **Expiry and time-bound tiers** end in every mode and despite a lock (they are scheduled, not
  evaluated). Lock, immutability and ``fixed`` mode stop every other automatic movement.
* **days_inactive** counts whole local days since the last event (or since registration when the member
  has none); a missing attribute fails its criterion.
"""

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from tiers.claims import claim_alive, earned_claims, grant_claim
from tiers.periods import day_start, local_day, period_of
from tiers.scope import current_window, ordered_rules
from tiers.types import (
    AssignmentSnapshot,
    Claim,
    DailyMetrics,
    MemberSnapshot,
    RuleSpec,
    TierDecision,
    TierSpec,
    TierTypeSpec,
)


# --- entitlement and movement ---------------------------------------------------------------------
def _soft_landing(spec: TierTypeSpec, tier_id: int, assignment: AssignmentSnapshot, now: datetime, tz: tzinfo) -> Claim:
    if spec.qualification == "lifetime":
        return Claim(tier_id, None, "soft_landing")
    if spec.qualification == "rolling":
        return Claim(tier_id, now + timedelta(days=spec.window_days or 0), "soft_landing")
    _, end = period_of(spec.qualification, now, tz, assignment.enrolled_at)
    return Claim(tier_id, end, "soft_landing")


def _entitled(spec: TierTypeSpec, claims: Iterable[Claim], now: datetime, exclude: int | None = None) -> TierSpec:
    """The highest-ranked available tier with a live claim; the default tier always counts."""
    best = spec.default_tier()
    for claim in claims:
        tier = spec.tier(claim.tier_id)
        if (
            tier is not None
            and tier.id != exclude
            and tier.available(now)
            and claim_alive(claim, now, spec.grace_days)
            and tier.rank > best.rank
        ):
            best = tier
    return best


def _valid_until(spec: TierTypeSpec, claims: Iterable[Claim], tier: TierSpec, now: datetime) -> datetime | None:
    ends = [
        c.ends_at
        for c in claims
        if (t := spec.tier(c.tier_id)) is not None and t.rank >= tier.rank and claim_alive(c, now, spec.grace_days)
    ]
    if not ends or any(e is None for e in ends):
        return None
    return max(e for e in ends if e is not None)


def _one_down(spec: TierTypeSpec, current: TierSpec, entitled: TierSpec, now: datetime) -> TierSpec:
    """The next lower tier a member may land on: climbable and available, or the entitled tier."""
    for tier in reversed(spec.by_rank()):
        if tier.rank >= current.rank:
            continue
        if tier.id == entitled.id or (tier.climbable and tier.available(now)) or tier.is_default:
            return tier if tier.rank >= entitled.rank else entitled
    return entitled


def _live_claims(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> tuple[tuple[Claim, ...], tuple[Claim, ...]]:
    """(claims earned from the metrics, granted claims still alive) at ``now``."""
    earned = tuple(earned_claims(spec, member, assignment, metrics, now, tz))
    granted = tuple(c for c in assignment.granted if claim_alive(c, now, spec.grace_days))
    return earned, granted


def held_until(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> datetime | None:
    """Until when the member keeps the tier they hold in ``spec`` on the claims they have at ``now``
    (earned and granted): the ``valid_until`` :func:`evaluate` gives a decision that keeps the tier.
    Set right after a manual change or invitation, so it need not wait for the next event."""
    earned, granted = _live_claims(spec, member, assignment, metrics, now, tz)
    tier = spec.tier(assignment.tier_id) or spec.default_tier()
    return _valid_until(spec, (*earned, *granted), tier, now)


def evaluate(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> TierDecision:
    """Decide the member's tier in ``spec`` at ``now`` (see the module docstring for the rules)."""
    current = spec.tier(assignment.tier_id) or spec.default_tier()
    earned, granted = _live_claims(spec, member, assignment, metrics, now, tz)
    claims = (*earned, *granted)
    entitled = _entitled(spec, claims, now)

    def decide(to: TierSpec, kind: str, reason: str, rule_id: int | None = None, **extra: Any) -> TierDecision:
        final_granted = extra.get("granted", granted)
        final_claims = (*earned, *final_granted) if "granted" in extra else claims
        return TierDecision(
            from_tier_id=current.id,
            to_tier_id=to.id,
            kind=kind if to.id != current.id else "none",
            reason=reason if to.id != current.id else "",
            rule_id=rule_id if to.id != current.id else None,
            valid_until=_valid_until(spec, final_claims, to, now),
            entitled_tier_id=entitled.id,
            claims=tuple(earned),
            granted=final_granted,
            claims_void_before=extra.get("void", assignment.claims_void_before),
        )

    # Scheduled ends apply in every mode and despite a lock.
    if assignment.expires_at is not None and now >= assignment.expires_at:
        return decide(entitled, "expiry", "manual assignment expired")
    if not current.available(now):
        return decide(_entitled(spec, claims, now, exclude=current.id), "time_bound_end", "time-bound tier ended")
    locked = assignment.lock_until is not None and now < assignment.lock_until
    if spec.mode == "fixed" or locked or current.immutable:
        return decide(current, "none", "")

    if spec.mode == "dynamic":
        fired = _demotion_rule(spec, member, assignment, metrics, current, entitled, now, tz)
        if fired is not None:
            rule, target = fired
            # Earlier claims are void; the landing tier holds until the period ends (as a soft landing).
            soft = () if target.is_default else (_soft_landing(spec, target.id, assignment, now, tz),)
            return decide(
                target,
                "demotion",
                f"demotion rule {rule.code}",
                rule.id,
                granted=soft,
                void=day_start(local_day(now, tz), tz),
            )

    promotable = [
        t
        for t in spec.by_rank()
        if t.climbable
        and t.available(now)
        and t.rank > current.rank
        and any(c.tier_id == t.id and claim_alive(c, now, spec.grace_days) for c in claims)
    ]
    if promotable:
        target = promotable[-1]
        rule_id = next((c.rule_id for c in earned if c.tier_id == target.id), None)
        return decide(target, "promotion", "qualified", rule_id)

    if current.rank > entitled.rank:
        if spec.demotion_step == "one_tier":
            target = _one_down(spec, current, entitled, now)
            soft = (_soft_landing(spec, target.id, assignment, now, tz),) if target.id != entitled.id else ()
            return decide(target, "demotion", "validity and grace ended (one tier)", granted=(*granted, *soft))
        return decide(entitled, "demotion", "validity and grace ended")
    return decide(current, "none", "")


def enroll(tier_id: int, now: datetime, source: str = "auto") -> AssignmentSnapshot:
    """A member's first position in a tier type: ``tier_id`` since ``now``."""
    return AssignmentSnapshot(tier_id=tier_id, since=now, enrolled_at=now, source=source)


def settle(assignment: AssignmentSnapshot, decision: TierDecision, now: datetime, source: str) -> AssignmentSnapshot:
    """The assignment once ``decision`` is applied at ``now``: on a move the new tier holds since
    ``now`` from ``source`` and any lock or manual expiry ends; the engine's own state (granted claims,
    the instant earned claims are void before, when a demotion rule last fired) is kept either way."""
    if not decision.changed:
        return replace(assignment, granted=decision.granted, claims_void_before=decision.claims_void_before)
    fired = decision.claims_void_before != assignment.claims_void_before
    return replace(
        assignment,
        tier_id=decision.to_tier_id,
        since=now,
        source=source,
        lock_until=None,
        expires_at=None,
        granted=decision.granted,
        claims_void_before=decision.claims_void_before,
        last_rule_demotion_at=now if fired else assignment.last_rule_demotion_at,
    )


def with_manual_grant(granted: Iterable[Claim], claim: Claim) -> tuple[Claim, ...]:
    """The granted claims after a manual change or invitation: its claim replaces any earlier manual one."""
    return (*(c for c in granted if c.source != "manual"), claim)


def rolled_back_claims(
    spec: TierTypeSpec,
    granted: Iterable[Claim],
    from_tier_id: int | None,
    to_tier_id: int,
    at: datetime,
    tz: tzinfo,
    expires_at: datetime | None,
) -> tuple[Claim, ...]:
    """The granted claims after a rollback moves the member from ``from_tier_id`` back to ``to_tier_id``.

    - **Back up** (undoing a demotion): the tier is given back as a manual change gives it
      (:func:`~tiers.claims.grant_claim`, replacing an earlier manual claim); without a claim the next
      evaluation would demote the member again at once.
    - **Back down** (undoing a promotion): manual claims on tiers above the restored one are dropped, so
      an undone manual change or invitation stays undone. Claims earned by activity are not stored and
      still count: an automatic promotion rolled back while the activity still qualifies is made again
      by the member's next evaluation (roll back the points or events too, or set a lock).
    """
    before, after = spec.tier(from_tier_id) if from_tier_id else None, spec.tier(to_tier_id)
    if after is None:
        return tuple(granted)
    if before is None or after.rank > before.rank:
        return with_manual_grant(granted, grant_claim(spec, to_tier_id, at, tz, expires_at))
    return tuple(c for c in granted if not (c.source == "manual" and (spec.tier(c.tier_id) or after).rank > after.rank))


def _demotion_rule(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    current: TierSpec,
    entitled: TierSpec,
    now: datetime,
    tz: tzinfo,
) -> tuple[RuleSpec, TierSpec] | None:
    last = assignment.last_rule_demotion_at
    if last is not None and (member.last_event_at is None or member.last_event_at <= last):
        return None  # it already fired and nothing happened since
    scope, start, today = current_window(spec, member, assignment, metrics, now, tz)
    for rule in ordered_rules(spec.rules, "demotion"):
        if not rule.effective(now):
            continue
        target = (
            spec.tier(rule.target_tier_id)
            if rule.target_tier_id
            else _one_down(spec, current, spec.default_tier(), now)
        )
        if target is None or target.rank >= current.rank:
            continue
        if scope.matches(rule, start, today):
            return rule, target
    return None

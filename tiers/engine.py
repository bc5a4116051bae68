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

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from tiers.types import (
    AssignmentSnapshot,
    Claim,
    CriterionSpec,
    DailyMetrics,
    MemberSnapshot,
    RuleSpec,
    TierDecision,
    TierSpec,
    TierTypeSpec,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PERIODS = 500  # safety bound on looking back over calendar periods
TIME_VARYING = ("days_inactive", "tenure_days")


# --- time -----------------------------------------------------------------------------------------
def local_day(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def day_end(day: date, tz: tzinfo) -> datetime:
    """The exclusive end of a local day: the next local midnight."""
    return day_start(day + timedelta(days=1), tz)


def _anniversary(year: int, anchor: date) -> date:
    try:
        return anchor.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def period_of(qualification: str, at: datetime, tz: tzinfo, enrolled_at: datetime) -> tuple[datetime, datetime]:
    """The calendar period containing ``at``, as [start, end) local-midnight instants."""
    day = local_day(at, tz)
    if qualification == "calendar_year":
        return day_start(date(day.year, 1, 1), tz), day_start(date(day.year + 1, 1, 1), tz)
    if qualification == "calendar_month":
        nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        return day_start(day.replace(day=1), tz), day_start(nxt, tz)
    if qualification == "anniversary":
        anchor = local_day(enrolled_at, tz)
        start = _anniversary(day.year, anchor)
        if start > day:
            start = _anniversary(day.year - 1, anchor)
        return day_start(start, tz), day_start(_anniversary(start.year + 1, anchor), tz)
    raise ValueError(f"{qualification} has no calendar periods")


def _previous_period(
    spec: TierTypeSpec, start: datetime, tz: tzinfo, enrolled_at: datetime
) -> tuple[datetime, datetime]:
    return period_of(spec.qualification, start - timedelta(seconds=1), tz, enrolled_at)


def _next_period_end(spec: TierTypeSpec, end: datetime, tz: tzinfo, enrolled_at: datetime) -> datetime:
    return period_of(spec.qualification, end, tz, enrolled_at)[1]


# --- criteria -------------------------------------------------------------------------------------
def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _equal(actual: Any, expected: Any) -> bool:
    a, e = _decimal(actual), _decimal(expected)
    if a is not None and e is not None:
        return a == e
    return actual == expected


def compare(actual: Any, operator: str, expected: Any) -> bool:
    """``actual <operator> expected``; numbers compare as decimals; None never matches."""
    if actual is None:
        return False
    if operator == "in":
        return any(_equal(actual, v) for v in expected)
    if operator == "eq":
        return _equal(actual, expected)
    if operator == "ne":
        return not _equal(actual, expected)
    a, e = _decimal(actual), _decimal(expected)
    if a is None or e is None:
        return False
    return {"gte": a >= e, "gt": a > e, "lte": a <= e, "lt": a < e}[operator]


class _Scope:
    """What one qualification check may see: metrics from ``start`` (None = ever) to ``day`` inclusive,
    never before ``void`` (the day a demotion rule voided earlier claims)."""

    def __init__(self, metrics: DailyMetrics, member: MemberSnapshot, tz: tzinfo, void: date | None, scope: str = ""):
        self.metrics, self.member, self.tz, self.void, self.scope = metrics, member, tz, void, scope

    def value(self, criterion: CriterionSpec, start: date | None, day: date, floor: date | None = None) -> Any:
        """The criterion's metric over ``start``..``day`` (or its own ``window_days`` ending on ``day``),
        counting nothing before ``floor``."""
        metric = criterion.metric
        if metric.startswith("attribute:"):
            return self.member.attributes.get(metric.partition(":")[2])
        if metric == "tenure_days":
            return (day - local_day(self.member.registered_at, self.tz)).days
        if metric == "days_inactive":
            last = self.member.last_event_at or self.member.registered_at
            return max(0, (day - local_day(last, self.tz)).days)
        if criterion.window_days:
            start = day - timedelta(days=criterion.window_days - 1)
        if floor is not None and (start is None or start < floor):
            start = floor
        return self.metrics.total(metric + self.scope, start, day)

    def matches(self, rule: RuleSpec, start: date | None, day: date) -> bool:
        """Whether ``rule`` holds over ``start``..``day``, counting only activity that occurred while the
        rule was effective (DOMAIN §7: rules apply if effective at the event's ``occurred_at``) and
        after any void."""
        floors = [d for d in (self.void, rule.effective_from and local_day(rule.effective_from, self.tz)) if d]
        floor = max(floors) if floors else None
        if rule.effective_until is not None:
            day = min(day, local_day(rule.effective_until - timedelta(microseconds=1), self.tz))
        if not rule.criteria:
            return False
        results = (compare(self.value(c, start, day, floor), c.operator, c.value) for c in rule.criteria)
        return all(results) if rule.combinator == "all" else any(results)


def _ordered(rules: Iterable[RuleSpec], direction: str) -> list[RuleSpec]:
    """Rules of one direction, deciding order: higher priority first, then lower id (DOMAIN §3.4)."""
    return sorted((r for r in rules if r.direction == direction), key=lambda r: (-r.priority, r.id))


def _effective_during(rule: RuleSpec, start: datetime, end: datetime) -> bool:
    return (
        rule.status == "active"
        and (rule.effective_from is None or rule.effective_from < end)
        and (rule.effective_until is None or rule.effective_until > start)
    )


# --- claims earned by promotion rules -------------------------------------------------------------
def earned_claims(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> list[Claim]:
    """For each tier a promotion rule targets, the latest-ending claim the member's activity earned."""
    rules = [r for r in _ordered(spec.rules, "promotion") if r.target_tier_id is not None]
    if not rules:
        return []
    void = local_day(assignment.claims_void_before, tz) if assignment.claims_void_before else None
    scope = _Scope(metrics, member, tz, void, spec.scope)
    if spec.qualification == "rolling":
        return _rolling_claims(spec, rules, scope, metrics, now, tz)
    if spec.qualification == "lifetime":
        today = local_day(now, tz)
        return _first_match_per_tier(
            rules, lambda r: _effective_during(r, _EPOCH, now) and scope.matches(r, None, today), None
        )
    return _calendar_claims(spec, rules, scope, metrics, assignment, now, tz)


def _first_match_per_tier(
    rules: list[RuleSpec], matches: Callable[[RuleSpec], bool], ends_at: datetime | None
) -> list[Claim]:
    claims: dict[int, Claim] = {}
    for rule in rules:
        tier_id = rule.target_tier_id
        if tier_id is not None and tier_id not in claims and matches(rule):
            claims[tier_id] = Claim(tier_id=tier_id, ends_at=ends_at, source="rule", rule_id=rule.id)
    return list(claims.values())


def _candidate_days(metrics: DailyMetrics, rules: list[RuleSpec], lo: date, hi: date, window: int | None) -> list[date]:
    """The days of ``lo``..``hi`` on which a rule's outcome can change, ascending.

    Sums over a period or a window change only on a day with activity (it enters) or when that day
    leaves a window, so every stretch of equal values starts and ends next to such a day: checking
    those days (and the bounds) finds the first and the last day a rule holds without scanning them all.
    """
    windows = {w for w in (window, *(c.window_days for r in rules for c in r.criteria)) if w}
    days = {lo, hi}
    for active in metrics.active_days(lo - timedelta(days=max(windows, default=0)), hi):
        days.update((active - timedelta(days=1), active))
        for w in windows:
            days.update((active + timedelta(days=w - 1), active + timedelta(days=w)))
    if any(c.metric in TIME_VARYING for r in rules for c in r.criteria):
        days.update(lo + timedelta(days=i) for i in range(0, (hi - lo).days + 1, 7))  # weekly, for tenure/inactivity
    return sorted(d for d in days if lo <= d <= hi)


RISING_OPERATORS = frozenset({"gte", "gt"})


def _rises_with_the_day(rule: RuleSpec, scope: _Scope, start: date, end: date) -> bool:
    """Whether ``rule`` checked over ``start``..d can only turn from false to true as d grows within
    ``start``..``end``: every criterion compares a running total (no window of its own, not an attribute
    or a time-varying metric) with ``gte``/``gt``, and no day of the range lowers that total. Then the
    rule holds on some day of the range exactly when it holds on the last, and the first day it holds
    can be found by bisection: the same answers as checking every day, without checking them all."""
    return all(
        c.operator in RISING_OPERATORS
        and not c.window_days
        and c.metric not in TIME_VARYING
        and not c.metric.startswith("attribute:")
        and scope.metrics.never_falls(c.metric + scope.scope, start, end)
        for c in rule.criteria
    )


def _calendar_claims(
    spec: TierTypeSpec,
    rules: list[RuleSpec],
    scope: _Scope,
    metrics: DailyMetrics,
    assignment: AssignmentSnapshot,
    now: datetime,
    tz: tzinfo,
) -> list[Claim]:
    """Claims from calendar periods (year, month, anniversary), newest period first.

    A rule holds in period P when, on some day of P, the activity from P's start to that day meets it
    (so a criterion's own window may be met at any time in P). ``fixed_days`` claims run from the first
    such day; the others from P's end.
    """
    grace = timedelta(days=spec.grace_days)
    validity = timedelta(days=spec.validity_days or 0)
    today = local_day(now, tz)
    found: dict[int, Claim] = {}
    wanted = {r.target_tier_id for r in rules}
    for start, end in _periods_newest_first(spec, metrics, assignment, now, tz):
        next_end = _next_period_end(spec, end, tz, assignment.enrolled_at)
        claim_end = {"end_of_period": end, "end_of_next_period": next_end}.get(spec.validity)
        if spec.validity == "fixed_days":
            alive = end + validity + grace >= now
        else:
            alive = claim_end is None or claim_end + grace >= now
        if not alive:
            break  # older periods end earlier still
        p_start, p_last = local_day(start, tz), min(local_day(end - timedelta(seconds=1), tz), today)
        if p_start > p_last:
            continue
        days: list[date] | None = None  # the candidate days, found once a rule needs them
        for rule in rules:
            tier_id = rule.target_tier_id
            if tier_id in found or tier_id is None or not _effective_during(rule, start, min(end, now)):
                continue
            rising = _rises_with_the_day(rule, scope, p_start, p_last)
            if spec.validity != "fixed_days":
                if scope.matches(rule, p_start, p_last):
                    found[tier_id] = Claim(tier_id, claim_end, "rule", rule.id)
                    continue
                if rising:
                    continue  # a rising rule that fails on the last day failed on every day
            if days is None:
                days = _candidate_days(metrics, rules, p_start, p_last, None)
            if spec.validity != "fixed_days":
                if any(scope.matches(rule, p_start, d) for d in reversed(days[:-1])):
                    found[tier_id] = Claim(tier_id, claim_end, "rule", rule.id)
                continue
            if rising:
                first = bisect_left(days, True, key=lambda d: scope.matches(rule, p_start, d))
                crossing = days[first] if first < len(days) else None
            else:
                crossing = next((d for d in days if scope.matches(rule, p_start, d)), None)
            if crossing is not None and day_end(crossing, tz) + validity + grace >= now:
                found[tier_id] = Claim(tier_id, day_end(crossing, tz) + validity, "rule", rule.id)
        if wanted <= found.keys():
            break
    return list(found.values())


def _periods_newest_first(
    spec: TierTypeSpec, metrics: DailyMetrics, assignment: AssignmentSnapshot, now: datetime, tz: tzinfo
) -> Iterator[tuple[datetime, datetime]]:
    """The current period, then every earlier period with activity, newest first (a period without
    activity qualifies for nothing that the current one would not). Lazily: callers stop at the first
    period whose claims have ended, and each period skips its own days in one bisection."""
    current = period_of(spec.qualification, now, tz, assignment.enrolled_at)
    yield current
    days = metrics.active_days(None, local_day(current[0], tz) - timedelta(days=1))
    last = len(days) - 1
    for _ in range(MAX_PERIODS - 1):
        if last < 0:
            return
        period = period_of(spec.qualification, day_start(days[last], tz), tz, assignment.enrolled_at)
        yield period
        last = bisect_left(days, local_day(period[0], tz)) - 1


def _rolling_claims(
    spec: TierTypeSpec, rules: list[RuleSpec], scope: _Scope, metrics: DailyMetrics, now: datetime, tz: tzinfo
) -> list[Claim]:
    """The latest day each tier's rule held over the window ending that day; the claim ends at that
    day's end (while_qualified) or ``validity_days`` later (fixed_days)."""
    window = spec.window_days or 1
    validity = timedelta(days=spec.validity_days or 0) if spec.validity == "fixed_days" else timedelta(0)
    today = local_day(now, tz)
    oldest = local_day(now - validity - timedelta(days=spec.grace_days), tz) - timedelta(days=1)
    found: dict[int, Claim] = {}
    wanted = {r.target_tier_id for r in rules}
    for day in reversed(_candidate_days(metrics, rules, oldest, today, window)):
        d_start, d_end = day_start(day, tz), day_end(day, tz)
        for rule in rules:
            tier_id = rule.target_tier_id
            if tier_id in found or tier_id is None or not _effective_during(rule, d_start, d_end):
                continue
            if scope.matches(rule, day - timedelta(days=window - 1), day):
                found[tier_id] = Claim(tier_id, d_end + validity, "rule", rule.id)
        if wanted <= found.keys():
            break
    return list(found.values())


# --- entitlement and movement ---------------------------------------------------------------------
def claim_alive(claim: Claim, now: datetime, grace_days: int) -> bool:
    """Whether a claim still counts at ``now``: until its end + grace (inclusive), or, for a manual grant
    with an explicit expiry, until just before that instant."""
    if claim.ends_at is None:
        return True
    if not claim.grace:
        return now < claim.ends_at
    return now <= claim.ends_at + timedelta(days=grace_days)


def grant_claim(spec: TierTypeSpec, tier_id: int, at: datetime, tz: tzinfo, expires_at: datetime | None) -> Claim:
    """The claim a manual change or invitation gives (see module docstring)."""
    if expires_at is not None:
        return Claim(tier_id, expires_at, "manual", grace=False)
    if spec.validity == "indefinite" or spec.qualification == "lifetime":
        return Claim(tier_id, None, "manual")
    if spec.validity in ("while_qualified",):
        return Claim(tier_id, at, "manual")
    if spec.validity == "fixed_days":
        return Claim(tier_id, day_end(local_day(at, tz), tz) + timedelta(days=spec.validity_days or 0), "manual")
    if spec.qualification == "rolling":
        return Claim(tier_id, at, "manual")
    _, end = period_of(spec.qualification, at, tz, at)
    if spec.validity == "end_of_next_period":
        end = _next_period_end(spec, end, tz, at)
    return Claim(tier_id, end, "manual")


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


def _current_window(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> tuple[_Scope, date | None, date]:
    """What the tier type's qualification window sees now: (scope, first day or None, today)."""
    void = local_day(assignment.claims_void_before, tz) if assignment.claims_void_before else None
    today = local_day(now, tz)
    if spec.qualification == "rolling":
        start: date | None = today - timedelta(days=(spec.window_days or 1) - 1)
    elif spec.qualification == "lifetime":
        start = None
    else:
        start = local_day(period_of(spec.qualification, now, tz, assignment.enrolled_at)[0], tz)
    return _Scope(metrics, member, tz, void, spec.scope), start, today


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
    scope, start, today = _current_window(spec, member, assignment, metrics, now, tz)
    for rule in _ordered(spec.rules, "demotion"):
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


def metrics_since(spec: TierTypeSpec, now: datetime, tz: tzinfo, enrolled_at: datetime) -> date | None:
    """The first local day whose metrics can still matter for ``spec`` at ``now`` (None = all of them):
    what an evaluation needs to load, no more."""
    if spec.validity == "indefinite" or spec.qualification == "lifetime":
        return None
    windows = [spec.window_days or 0, *(c.window_days or 0 for r in spec.rules for c in r.criteria)]
    back = now - timedelta(days=spec.grace_days + (spec.validity_days or 0) + 1)
    if spec.qualification == "rolling":
        return local_day(back, tz) - timedelta(days=max(windows))
    start, _ = period_of(spec.qualification, back, tz, enrolled_at)
    if spec.validity == "end_of_next_period":
        start, _ = _previous_period(spec, start, tz, enrolled_at)
    return local_day(start, tz) - timedelta(days=max(windows))


def readable(value: Decimal | None, *, up: bool) -> int | float | None:
    """A metric as a person reads it: a whole number as an integer, anything else to two decimals
    (26.592 nights held reads 26.59; what is needed or remains rounds up, so it is never understated)."""
    if value is None:
        return None
    rounded = value.quantize(Decimal("0.01"), rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def progress(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> dict[str, Any] | None:
    """What is still needed for the next tier (DOMAIN §9): the lowest climbable tier above the current
    one that a promotion rule targets, and per rule and criterion the current value in the current
    window, the required value and what remains, as numbers (:func:`readable`; null for attribute
    criteria, which report only whether they are ``met``). None at the top of the ladder."""
    current = spec.tier(assignment.tier_id) or spec.default_tier()
    rules = [r for r in _ordered(spec.rules, "promotion") if r.effective(now)]
    targets = {r.target_tier_id for r in rules}
    upper = [
        t for t in spec.by_rank() if t.rank > current.rank and t.climbable and t.available(now) and t.id in targets
    ]
    if not upper:
        return None
    nxt = upper[0]
    scope, start, today = _current_window(spec, member, assignment, metrics, now, tz)
    criteria = []
    qualifies = False
    for rule in rules:
        if rule.target_tier_id != nxt.id:
            continue
        qualifies = qualifies or scope.matches(rule, start, today)
        for criterion in rule.criteria:
            value = scope.value(criterion, start, today, scope.void)
            numeric = not criterion.metric.startswith("attribute:")
            have = (_decimal(value) or Decimal(0)) if numeric else None
            need = _decimal(criterion.value) if numeric else None
            remaining = None
            if have is not None and need is not None and criterion.operator in ("gte", "gt"):
                remaining = (
                    max(Decimal(0), need - have)
                    if criterion.operator == "gte"
                    else (Decimal(0) if have > need else need - have)
                )
            criteria.append(
                {
                    "rule": rule.code,
                    "metric": criterion.metric,
                    "operator": criterion.operator,
                    "current": readable(have, up=False),
                    "required": readable(need, up=True),
                    "remaining": readable(remaining, up=True),
                    "met": compare(value, criterion.operator, criterion.value),
                }
            )
    return {"next_tier": nxt.code, "qualifies": qualifies, "criteria": criteria}


def criteria_hold(
    criteria: tuple | list,
    *,
    metrics: DailyMetrics,
    member: MemberSnapshot,
    now: datetime,
    tz: tzinfo,
    window_days: int = 365,
    combinator: str = "all",
) -> bool:
    """Whether criteria (DOMAIN §3.3) hold now over the last ``window_days`` days (a criterion's own
    ``window_days`` overrides): the test of a conditional benefit at grant."""
    specs = tuple(c if isinstance(c, CriterionSpec) else CriterionSpec(**c) for c in criteria)
    rule = RuleSpec(
        id=0, code="criteria", direction="promotion", target_tier_id=None, criteria=specs, combinator=combinator
    )
    today = local_day(now, tz)
    return _Scope(metrics, member, tz, None).matches(rule, today - timedelta(days=window_days - 1), today)

"""Claims (DOMAIN §3.4): what a member's activity earned under each promotion rule, derived from the daily
metrics at every evaluation (never stored), and the claims a manual change or invitation grants.

Calendar periods are searched newest first and stop at the first period whose claims have ended; a
rule whose running totals only rise is judged on its last day (or bisected for its first) instead of
on every candidate day, with the same result (``tests/tiers/test_engine_properties.py``)."""

from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo

from tiers.periods import day_end, day_start, local_day, next_period_end, period_of
from tiers.scope import TIME_VARYING, Scope, effective_during, ordered_rules
from tiers.types import AssignmentSnapshot, Claim, DailyMetrics, MemberSnapshot, RuleSpec, TierTypeSpec

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PERIODS = 500  # safety bound on looking back over calendar periods
RISING_OPERATORS = frozenset({"gte", "gt"})


def earned_claims(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> list[Claim]:
    """For each tier a promotion rule targets, the latest-ending claim the member's activity earned."""
    rules = [r for r in ordered_rules(spec.rules, "promotion") if r.target_tier_id is not None]
    if not rules:
        return []
    void = local_day(assignment.claims_void_before, tz) if assignment.claims_void_before else None
    scope = Scope(metrics, member, tz, void, spec.scope)
    if spec.qualification == "rolling":
        return _rolling_claims(spec, rules, scope, metrics, now, tz)
    if spec.qualification == "lifetime":
        today = local_day(now, tz)
        return _first_match_per_tier(
            rules, lambda r: effective_during(r, _EPOCH, now) and scope.matches(r, None, today), None
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


def _rises_with_the_day(rule: RuleSpec, scope: Scope, start: date, end: date) -> bool:
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
    scope: Scope,
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
        next_end = next_period_end(spec, end, tz, assignment.enrolled_at)
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
            if tier_id in found or tier_id is None or not effective_during(rule, start, min(end, now)):
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
    spec: TierTypeSpec, rules: list[RuleSpec], scope: Scope, metrics: DailyMetrics, now: datetime, tz: tzinfo
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
            if tier_id in found or tier_id is None or not effective_during(rule, d_start, d_end):
                continue
            if scope.matches(rule, day - timedelta(days=window - 1), day):
                found[tier_id] = Claim(tier_id, d_end + validity, "rule", rule.id)
        if wanted <= found.keys():
            break
    return list(found.values())


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
        end = next_period_end(spec, end, tz, at)
    return Claim(tier_id, end, "manual")

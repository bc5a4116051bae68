"""What a qualification check sees and how criteria compare (DOMAIN §3.3): a rule over a span of local
days of the member's daily metrics, counting nothing before a void or the rule's own start. Used by
the claims, movement and progress of the tier engine, and by conditional benefits (``criteria_hold``)."""

from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from tiers.periods import local_day, period_of
from tiers.types import AssignmentSnapshot, CriterionSpec, DailyMetrics, MemberSnapshot, RuleSpec, TierTypeSpec

TIME_VARYING = ("days_inactive", "tenure_days")


def as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _equal(actual: Any, expected: Any) -> bool:
    a, e = as_decimal(actual), as_decimal(expected)
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
    a, e = as_decimal(actual), as_decimal(expected)
    if a is None or e is None:
        return False
    return {"gte": a >= e, "gt": a > e, "lte": a <= e, "lt": a < e}[operator]


class Scope:
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


def ordered_rules(rules: Iterable[RuleSpec], direction: str) -> list[RuleSpec]:
    """Rules of one direction, deciding order: higher priority first, then lower id (DOMAIN §3.4)."""
    return sorted((r for r in rules if r.direction == direction), key=lambda r: (-r.priority, r.id))


def effective_during(rule: RuleSpec, start: datetime, end: datetime) -> bool:
    return (
        rule.status == "active"
        and (rule.effective_from is None or rule.effective_from < end)
        and (rule.effective_until is None or rule.effective_until > start)
    )


def current_window(
    spec: TierTypeSpec,
    member: MemberSnapshot,
    assignment: AssignmentSnapshot,
    metrics: DailyMetrics,
    now: datetime,
    tz: tzinfo,
) -> tuple[Scope, date | None, date]:
    """What the tier type's qualification window sees now: (scope, first day or None, today)."""
    void = local_day(assignment.claims_void_before, tz) if assignment.claims_void_before else None
    today = local_day(now, tz)
    if spec.qualification == "rolling":
        start: date | None = today - timedelta(days=(spec.window_days or 1) - 1)
    elif spec.qualification == "lifetime":
        start = None
    else:
        start = local_day(period_of(spec.qualification, now, tz, assignment.enrolled_at)[0], tz)
    return Scope(metrics, member, tz, void, spec.scope), start, today


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
    return Scope(metrics, member, tz, None).matches(rule, today - timedelta(days=window_days - 1), today)

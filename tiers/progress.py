"""Reading the tier engine for people and loaders: what is still needed for the next tier (DOMAIN §9),
metric values as a person reads them, and the first day of metrics an evaluation needs."""

from datetime import date, datetime, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from tiers.periods import local_day, period_of, previous_period
from tiers.scope import as_decimal, compare, current_window, ordered_rules
from tiers.types import AssignmentSnapshot, DailyMetrics, MemberSnapshot, TierTypeSpec


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
        start, _ = previous_period(spec, start, tz, enrolled_at)
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
    rules = [r for r in ordered_rules(spec.rules, "promotion") if r.effective(now)]
    targets = {r.target_tier_id for r in rules}
    upper = [
        t for t in spec.by_rank() if t.rank > current.rank and t.climbable and t.available(now) and t.id in targets
    ]
    if not upper:
        return None
    nxt = upper[0]
    scope, start, today = current_window(spec, member, assignment, metrics, now, tz)
    criteria = []
    qualifies = False
    for rule in rules:
        if rule.target_tier_id != nxt.id:
            continue
        qualifies = qualifies or scope.matches(rule, start, today)
        for criterion in rule.criteria:
            value = scope.value(criterion, start, today, scope.void)
            numeric = not criterion.metric.startswith("attribute:")
            have = (as_decimal(value) or Decimal(0)) if numeric else None
            need = as_decimal(criterion.value) if numeric else None
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

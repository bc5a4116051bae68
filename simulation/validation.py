"""Static validation of a program (DOMAIN §9): what in a configuration cannot work as written, or most
likely does not do what its author meant, found without replaying a single event.

Pure: it reads a :class:`simulation.config.Program` (the live one, or one a scenario changes) and
returns :class:`Issue` values; no ORM, no clock. Messages are sentences for a business admin and name
tiers and rules by their codes.

Severity: ``error`` when an object can never take effect as written (an inverted window, a demotion rule
that points up); ``warning`` when it works but most likely not as meant (thresholds that do not rise,
a tier no rule reaches, overlaps decided by creation order, caps that cut every event).

The checks, precisely:

* ``thresholds_not_rising`` — per tier type and per metric (with its window), a tier's threshold is the
  lowest value of a ``≥``/``>`` criterion of a promotion rule targeting it. A tier whose threshold is not
  above the highest threshold of the lower-ranked tiers on the same metric is reported once, against that
  lower tier: members meeting the lower tier's threshold qualify for the higher tier at the same time.
  Attributes and ``days_inactive`` are not thresholds and are left out.
* ``tier_unreachable`` — a climbable tier that is not the entry (default) tier and that no promotion
  rule which can ever fire targets, in a tier type that moves members automatically (not ``fixed``).
* ``rules_overlap`` — two demotion rules of one tier type, of equal priority, for different targets
  (a tier, or one tier down), effective at a common instant, whose criteria one member can satisfy
  together: the first matching demotion rule fires, so where the member lands is then left to the order
  the rules were created in. Promotion rules are not compared: a member meeting several gets the highest
  tier any of them earns whatever their order (priority only picks the rule named as the reason), so the
  overlap of an ordinary ladder ("silver at 10 nights, gold at 25") is how ladders work, not a mistake;
  the promotion-side mistakes are ``thresholds_not_rising`` and ``tier_unreachable``.
* ``demotion_points_up`` — a demotion rule applies from the tier the member holds, and the engine skips
  it whenever its target ranks at or above that tier. A rule whose target ranks at or above every tier of
  its type (the highest tier) therefore points up (or sideways) from every tier it applies from and never
  demotes anyone. (A target in the middle of the ladder is normal: it demotes members above it.)
* ``window_inverted`` — ``effective_from`` at or after ``effective_until`` on a rule, ``starts_at`` at or
  after ``ends_at`` on a modifier, ``available_from`` at or after ``available_until`` on a tier, or a
  criterion window outside 1…3660 days or on a metric without a window (days inactive, tenure,
  attributes).
* ``cap_below_award`` — a conversion rule's cap (per event/day/week/month), or the program's cap, below
  the points a single qualifying event earns under the rule before tier multipliers and modifiers: the
  points per event of a ``per_event`` rule, else the points of one unit (for ``per_amount`` with a
  minimum amount, of the whole units of that minimum). Every such event is cut.
* ``point_rules_overlap`` — two conversion rules of one group with equal priority whose scopes (event
  types, product, partner, source, channel; blank = any) and effective windows overlap: only one of them
  awards for an event both match, and creation order decides which.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from itertools import combinations, pairwise, product
from typing import TYPE_CHECKING, Any

from points.types import ConversionRuleSpec, Policy
from tiers.criteria import MAX_WINDOW_DAYS, UNWINDOWED_METRICS, summarize_criterion
from tiers.scope import compare
from tiers.types import CriterionSpec, RuleSpec, TierSpec, TierTypeSpec

if TYPE_CHECKING:
    from simulation.config import Program

ERROR = "error"
WARNING = "warning"

TIER_TYPE = "tier_type"
TIER = "tier"
PROMOTION_RULE = "promotion_rule"
CONVERSION_RULE = "conversion_rule"
MODIFIER = "modifier"
POINT_POLICY = "point_policy"

NOT_THRESHOLDS = ("days_inactive",)
INTEGER_METRICS = ("transactions", "tenure_days", "days_inactive")  # and every events:<type>


@dataclass(frozen=True)
class ObjectRef:
    """A configuration object an issue concerns: its kind (``tier_type``, ``tier``, ``promotion_rule``,
    ``conversion_rule``, ``modifier``, ``point_policy``), id (None for the tenant's point policy) and code."""

    kind: str
    id: int | None
    code: str


@dataclass(frozen=True)
class Issue:
    severity: str  # error | warning
    code: str
    message: str
    objects: tuple[ObjectRef, ...]

    def concerns(self, kind: str, pk: int) -> bool:
        return any(o.kind == kind and o.id == pk for o in self.objects)


def validate(program: Program) -> list[Issue]:
    """Every issue of ``program``, errors first, then in the order of the checks above."""
    issues: list[Issue] = []
    for spec in program.tier_types:
        issues += window_issues(spec, program.tz)
        issues += threshold_issues(spec)
        issues += unreachable_issues(spec)
        issues += overlap_issues(spec)
        issues += demotion_issues(spec)
    issues += point_rule_window_issues(program)
    issues += cap_issues(program.point_rules, program.policy)
    issues += point_overlap_issues(program.point_rules)
    return sorted(issues, key=lambda i: i.severity != ERROR)


# --- references and wording -----------------------------------------------------------------------
def _type_ref(spec: TierTypeSpec) -> ObjectRef:
    return ObjectRef(TIER_TYPE, spec.id, spec.code)


def _tier_ref(tier: TierSpec) -> ObjectRef:
    return ObjectRef(TIER, tier.id, tier.code)


def _rule_ref(rule: RuleSpec) -> ObjectRef:
    return ObjectRef(PROMOTION_RULE, rule.id, rule.code)


def _point_ref(rule: ConversionRuleSpec) -> ObjectRef:
    return ObjectRef(CONVERSION_RULE, rule.id, rule.code)


def _text(criterion: CriterionSpec) -> str:
    return summarize_criterion(
        {
            "metric": criterion.metric,
            "operator": criterion.operator,
            "value": criterion.value,
            "window_days": criterion.window_days,
        }
    )


def _when(at: datetime | None, tz: tzinfo) -> str:
    """An instant as the tenant reads it (its own time zone)."""
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else ""


def _inverted(start: datetime | None, end: datetime | None) -> bool:
    return start is not None and end is not None and start >= end


def _meet(a: tuple[datetime | None, datetime | None], b: tuple[datetime | None, datetime | None]) -> bool:
    """Whether two [from, until) windows (None = unbounded) share an instant."""
    return (a[0] is None or b[1] is None or a[0] < b[1]) and (b[0] is None or a[1] is None or b[0] < a[1])


def _can_fire(rule: RuleSpec) -> bool:
    return bool(rule.criteria) and not _inverted(rule.effective_from, rule.effective_until)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _kind(rule: RuleSpec) -> str:
    return "promotion rule" if rule.direction == "promotion" else "demotion rule"


# --- windows --------------------------------------------------------------------------------------
def _bad_window(criterion: CriterionSpec) -> str | None:
    days = criterion.window_days
    if days is None:
        return None
    if criterion.metric.startswith("attribute:") or criterion.metric in UNWINDOWED_METRICS:
        name = criterion.metric.partition(":")[2] or criterion.metric.replace("_", " ")
        return f"a window of {days} days, but {name} has no window"
    if not 1 <= days <= MAX_WINDOW_DAYS:
        return f"a window of {days} days (it must be 1 to {MAX_WINDOW_DAYS} days)"
    return None


def window_issues(spec: TierTypeSpec, tz: tzinfo = UTC) -> Iterator[Issue]:
    for tier in spec.by_rank():
        if _inverted(tier.available_from, tier.available_until):
            yield Issue(
                ERROR,
                "window_inverted",
                f"Tier '{tier.code}' of '{spec.code}' is available from {_when(tier.available_from, tz)} "
                f"until {_when(tier.available_until, tz)}, which ends no later than it starts: no member can "
                "ever hold it. Fix the dates.",
                (_type_ref(spec), _tier_ref(tier)),
            )
    for rule in sorted(spec.rules, key=lambda r: r.id):
        if _inverted(rule.effective_from, rule.effective_until):
            yield Issue(
                ERROR,
                "window_inverted",
                f"The {_kind(rule)} '{rule.code}' of '{spec.code}' is effective from "
                f"{_when(rule.effective_from, tz)} until {_when(rule.effective_until, tz)}, which ends "
                "no later than it starts: it never applies. Fix the dates.",
                (_type_ref(spec), _rule_ref(rule)),
            )
        for criterion in rule.criteria:
            problem = _bad_window(criterion)
            if problem:
                yield Issue(
                    ERROR,
                    "window_inverted",
                    f"The {_kind(rule)} '{rule.code}' of '{spec.code}' has a criterion with {problem}. "
                    "Remove or correct the window.",
                    (_type_ref(spec), _rule_ref(rule)),
                )


def point_rule_window_issues(program: Program) -> Iterator[Issue]:
    tz = program.tz
    for rule in sorted(program.point_rules, key=lambda r: r.id):
        if _inverted(rule.effective_from, rule.effective_until):
            yield Issue(
                ERROR,
                "window_inverted",
                f"The point rule '{rule.code}' is effective from {_when(rule.effective_from, tz)} until "
                f"{_when(rule.effective_until, tz)}, which ends no later than it starts: it never awards points. "
                "Fix the dates.",
                (_point_ref(rule),),
            )
    for modifier in sorted(program.modifiers, key=lambda m: m.id):
        if _inverted(modifier.starts_at, modifier.ends_at):
            yield Issue(
                ERROR,
                "window_inverted",
                f"The point modifier '{modifier.code}' runs from {_when(modifier.starts_at, tz)} until "
                f"{_when(modifier.ends_at, tz)}, which ends no later than it starts: it never applies. "
                "Fix the dates.",
                (ObjectRef(MODIFIER, modifier.id, modifier.code),),
            )


# --- thresholds -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Threshold:
    tier: TierSpec
    rule: RuleSpec
    criterion: CriterionSpec
    level: tuple[Decimal, int]  # (value, 1 if strict): "> 24" sits just above ">= 24"


def threshold_issues(spec: TierTypeSpec) -> Iterator[Issue]:
    lowest: dict[tuple[str, int | None], dict[int, _Threshold]] = defaultdict(dict)
    for rule in sorted(spec.rules, key=lambda r: r.id):
        tier = spec.tier(rule.target_tier_id)
        if rule.direction != "promotion" or tier is None or not _can_fire(rule):
            continue
        for criterion in rule.criteria:
            value = _number(criterion.value)
            if (
                criterion.operator not in ("gte", "gt")
                or value is None
                or criterion.metric.startswith("attribute:")
                or criterion.metric in NOT_THRESHOLDS
            ):
                continue
            level = (value, 1 if criterion.operator == "gt" else 0)
            key = (criterion.metric, criterion.window_days)
            held = lowest[key].get(tier.id)
            if held is None or level < held.level:
                lowest[key][tier.id] = _Threshold(tier, rule, criterion, level)
    for key in sorted(lowest, key=lambda k: (k[0], k[1] or 0)):
        below: _Threshold | None = None  # the highest threshold of the tiers ranked below
        for threshold in sorted(lowest[key].values(), key=lambda t: t.tier.rank):
            if below is not None and threshold.level <= below.level:
                yield Issue(
                    WARNING,
                    "thresholds_not_rising",
                    f"In '{spec.code}', tier '{threshold.tier.code}' (rank {threshold.tier.rank}) is reached with "
                    f"{_text(threshold.criterion)} (rule '{threshold.rule.code}'), which is not more than the lower "
                    f"tier '{below.tier.code}' (rank {below.tier.rank}) asks: {_text(below.criterion)} (rule "
                    f"'{below.rule.code}'). Members would reach '{threshold.tier.code}' no later than "
                    f"'{below.tier.code}'. Raise the threshold of the higher tier or lower the other.",
                    (
                        _type_ref(spec),
                        _tier_ref(below.tier),
                        _tier_ref(threshold.tier),
                        _rule_ref(below.rule),
                        _rule_ref(threshold.rule),
                    ),
                )
            if below is None or threshold.level > below.level:
                below = threshold


# --- reachability ---------------------------------------------------------------------------------
def unreachable_issues(spec: TierTypeSpec) -> Iterator[Issue]:
    if spec.mode == "fixed":
        return
    entry = spec.default_tier()
    targeted = {r.target_tier_id for r in spec.rules if r.direction == "promotion" and _can_fire(r)}
    for tier in spec.by_rank():
        if tier.climbable and not tier.is_default and tier.id != entry.id and tier.id not in targeted:
            yield Issue(
                WARNING,
                "tier_unreachable",
                f"No promotion rule leads to tier '{tier.code}' of '{spec.code}', yet it is marked climbable: "
                "members can only get it by a manual change. Add a promotion rule for it, or mark it not "
                "climbable if it is by invitation only.",
                (_type_ref(spec), _tier_ref(tier)),
            )


# --- overlapping tier rules -----------------------------------------------------------------------
_ANY_VALUE = object()  # equals nothing, compares with no number: satisfies only "≠" criteria


def _candidates(constraints: Sequence[CriterionSpec], integral: bool) -> list[Any]:
    fixed = [c for c in constraints if c.operator in ("eq", "in")]
    if fixed:
        return [v for c in fixed for v in (c.value if c.operator == "in" else [c.value])]
    numbers = sorted({n for c in constraints if (n := _number(c.value)) is not None})
    out: list[Any] = [_ANY_VALUE, Decimal(0)]
    for n in numbers:
        out += [n, n - 1, n + 1]
    if not integral:
        out += [(a + b) / 2 for a, b in pairwise(numbers)]
    return out


def _jointly_satisfiable(constraints: Iterable[CriterionSpec]) -> bool:
    """Whether one member's metrics can meet every criterion at once (per metric and window)."""
    groups: dict[tuple[str, int | None], list[CriterionSpec]] = defaultdict(list)
    for c in constraints:
        groups[(c.metric, c.window_days)].append(c)
    for (metric, _window), group in groups.items():
        integral = metric in INTEGER_METRICS or metric.startswith("events:")
        if not any(all(compare(v, c.operator, c.value) for c in group) for v in _candidates(group, integral)):
            return False
    return True


def _clauses(rule: RuleSpec) -> list[tuple[CriterionSpec, ...]]:
    """The ways the rule can be met: all its criteria together, or any one of them."""
    if rule.combinator == "all":
        return [rule.criteria]
    return [(c,) for c in rule.criteria]


def _overlap(a: RuleSpec, b: RuleSpec) -> tuple[CriterionSpec, ...] | None:
    """Criteria a member can meet that satisfy both rules (None when none exist)."""
    for left, right in product(_clauses(a), _clauses(b)):
        if _jointly_satisfiable((*left, *right)):
            return (*left, *right)
    return None


def _target(spec: TierTypeSpec, rule: RuleSpec) -> str:
    tier = spec.tier(rule.target_tier_id)
    return f"to '{tier.code}'" if tier else "one tier down"


def overlap_issues(spec: TierTypeSpec) -> Iterator[Issue]:
    rules = sorted((r for r in spec.rules if r.direction == "demotion" and _can_fire(r)), key=lambda r: r.id)
    for a, b in combinations(rules, 2):
        if a.priority != b.priority or a.target_tier_id == b.target_tier_id:
            continue
        if not _meet((a.effective_from, a.effective_until), (b.effective_from, b.effective_until)):
            continue
        both = _overlap(a, b)
        if both is None:
            continue
        met = " and ".join(dict.fromkeys(_text(c) for c in both))
        yield Issue(
            WARNING,
            "rules_overlap",
            f"In '{spec.code}', the demotion rules '{a.code}' ({_target(spec, a)}) and '{b.code}' "
            f"({_target(spec, b)}) have the same priority {a.priority}, and a member with {met} meets both: "
            f"where the member lands is left to the order the rules were created in ('{a.code}' first). "
            "Give the one that should win a higher priority.",
            (_type_ref(spec), _rule_ref(a), _rule_ref(b)),
        )


# --- demotion -------------------------------------------------------------------------------------
def demotion_issues(spec: TierTypeSpec) -> Iterator[Issue]:
    top = max((t.rank for t in spec.tiers), default=0)
    for rule in sorted(spec.rules, key=lambda r: r.id):
        target = spec.tier(rule.target_tier_id)
        if rule.direction != "demotion" or target is None or target.rank < top:
            continue
        yield Issue(
            ERROR,
            "demotion_points_up",
            f"The demotion rule '{rule.code}' of '{spec.code}' moves members to '{target.code}', the highest "
            "tier: from every tier it applies to, that is up or sideways, so it never demotes anyone. "
            "Point it to a lower tier, or leave the target empty to step down one tier.",
            (_type_ref(spec), _rule_ref(rule), _tier_ref(target)),
        )


# --- caps -----------------------------------------------------------------------------------------
CAPS = (
    ("cap_per_event", "per event"),
    ("cap_per_day", "per day"),
    ("cap_per_week", "per week"),
    ("cap_per_month", "per month"),
)


def single_event_award(rule: ConversionRuleSpec) -> Decimal:
    """The points the smallest qualifying event earns under ``rule`` before multipliers and modifiers."""
    points = Decimal(rule.points_per_unit)
    if rule.base == "per_amount" and rule.min_amount and rule.unit_amount:
        units = (rule.min_amount / rule.unit_amount).to_integral_value(ROUND_FLOOR)
        return points * max(units, Decimal(1))
    return points


def cap_issues(rules: Sequence[ConversionRuleSpec], policy: Policy) -> Iterator[Issue]:
    for rule in sorted(rules, key=lambda r: r.id):
        award = single_event_award(rule)
        if award <= 0:
            continue
        own = [f"{label} {cap}" for name, label in CAPS if (cap := getattr(rule, name)) is not None and cap < award]
        program = [
            f"{label} {cap}" for name, label in CAPS if (cap := getattr(policy, name)) is not None and cap < award
        ]
        if not own and not program:
            continue
        parts = []
        if own:
            parts.append(f"its cap {', '.join(own)}")
        if program:
            parts.append(f"the program's cap {', '.join(program)}")
        event = "each event" if rule.base == "per_event" else "the smallest qualifying event"
        refs = (_point_ref(rule), *((ObjectRef(POINT_POLICY, None, "policy"),) if program else ()))
        yield Issue(
            WARNING,
            "cap_below_award",
            f"The point rule '{rule.code}' gives {award} points for {event}, but {' and '.join(parts)} "
            f"{'is' if len(own) + len(program) == 1 else 'are'} lower: every such event is cut to the cap. "
            "Raise the cap or lower the rule's points.",
            refs,
        )


# --- overlapping point rules ----------------------------------------------------------------------
def _scope_meets(a: ConversionRuleSpec, b: ConversionRuleSpec) -> bool:
    if a.event_types and b.event_types and not set(a.event_types) & set(b.event_types):
        return False
    return all(
        not getattr(a, name) or not getattr(b, name) or getattr(a, name) == getattr(b, name)
        for name in ("product", "partner", "source", "channel")
    )


def point_overlap_issues(rules: Sequence[ConversionRuleSpec]) -> Iterator[Issue]:
    live = sorted((r for r in rules if not _inverted(r.effective_from, r.effective_until)), key=lambda r: r.id)
    for a, b in combinations(live, 2):
        if a.group != b.group or a.priority != b.priority or not _scope_meets(a, b):
            continue
        if not _meet((a.effective_from, a.effective_until), (b.effective_from, b.effective_until)):
            continue
        yield Issue(
            WARNING,
            "point_rules_overlap",
            f"The point rules '{a.code}' and '{b.code}' are both in group '{a.group}' with priority {a.priority} "
            f"and can match the same event; only one of them awards points for it, and the order they were "
            f"created in decides which ('{a.code}'). Give the one that should win a higher priority, or narrow "
            "their event types, product, partner, source or channel so they no longer meet.",
            (_point_ref(a), _point_ref(b)),
        )

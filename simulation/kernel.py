"""The replay kernel: one member's stored history run again, in memory, through the pure engines live
evaluation uses (``points.engine``, ``tiers.engine``, ``tiers.metrics`` contributions), under any
:class:`~simulation.config.Program`. No ORM, no clock: ``simulation.loader`` feeds it in bulk.

Interface (what reconciliation, review and time travel build on)::

    base, scen = replay(history, baseline_program, scenario_program, start=t0, end=t1)

``history`` is a :class:`MemberHistory` (the member, their counted events in processing order, and the
tier facts events cannot tell). Everything processed before ``start`` runs under the baseline program
once; the state at ``start`` is then forked and the rest runs twice, under each program. With
``end`` the tiers are evaluated once more at that instant (as a review would find them then). Each
:class:`MemberOutcome` holds the tiers, the points of every event and the rule hits.

How live processing is mirrored (tested member by member against the live state):

* Events are replayed in **runs**, as the live pipeline evaluated them: the events processed together
  (one ``processed_at``) earn their points one by one (caps read what came before, late arrivals are
  re-allocated in ``occurred_at`` order), add their metric contributions, then the tiers are evaluated
  once at the run's processing instant, at the tiers held before the run for point multipliers.
* **Tier facts** come from the tier history: enrolments, manual changes, invitations, event codes and
  removals are applied as the facts they were (with their lock, expiry and manual claim); rollbacks
  with ``tiers.engine.rolled_back_claims``; reconciliation repairs as the tier they set; changes the
  periodic review or the evaluate endpoints made are replayed as evaluations at that instant.
* Known limits: campaign pools are shared across members and are taken as not exhausted (a replay of
  one member cannot know what the others drew); benefits given by campaigns and event codes, welcome
  points and operators' point reversals are outside the replay (reconciliation adds the reversals
  to what it expects).
"""

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from itertools import groupby
from typing import Any

from benefits.engine import HeldTier, tier_benefits
from points.buckets import award_buckets, bucket_keys, capped_bucket_names, cut_by_period, horizon
from points.engine import calculate, point_event, reallocate, refund_reversals
from points.types import Award, LaterEarn
from simulation.config import Program
from tenancy.models import Tenant
from tiers.claims import grant_claim
from tiers.engine import enroll, evaluate, rolled_back_claims, settle, with_manual_grant
from tiers.metrics import contributions, points_contributions
from tiers.scope import criteria_hold
from tiers.types import AssignmentSnapshot, DailyMetrics, MemberSnapshot

REVIEW_KINDS = frozenset({"demotion", "expiry", "time_bound_end"})
CLAIM_SOURCES = frozenset({"manual", "invitation", "event_code"})  # changes that grant a manual claim
FACT_SOURCES = CLAIM_SOURCES | {"rollback", "reconciliation"}


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored, counted member event as the engines read it."""

    pk: int
    event_id: str
    type: str
    occurred_at: datetime
    processed_at: datetime
    amount: Decimal | None = None
    quantities: Any = field(default_factory=dict)
    product: str = ""
    partner: str = ""
    source: str = ""
    channel: str = ""
    campaign_code: str = ""
    qualifying: bool = True
    refund_of: int | None = None
    refunded_amount: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class TierFact:
    """A row of the tier history the replay takes as given (``kind`` ``assign``, ``remove``) or as an
    instant to evaluate at (``evaluate``, with the kinds of movement that evaluation applied)."""

    at: datetime
    tier_type_id: int
    kind: str
    tier_id: int | None = None
    source: str = "auto"
    lock_until: datetime | None = None
    expires_at: datetime | None = None
    kinds: frozenset[str] | None = None


@dataclass
class MemberHistory:
    pk: int
    external_id: str
    member: MemberSnapshot
    events: list[EventRecord]
    facts: list[TierFact]


@dataclass
class MemberOutcome:
    tiers: dict[int, int]  # tier type id → tier id
    points: int
    event_points: dict[int, int]  # event pk → net points (earned, reversed, adjusted)
    rule_hits: Counter[tuple[str, int]]  # ("promotion"|"demotion"|"points", rule id) → hits
    events: int
    benefits: frozenset[int] = frozenset()  # tier benefits the member is entitled to at the end
    assignments: dict[int, AssignmentSnapshot] = field(default_factory=dict)  # the final positions
    metrics: DailyMetrics | None = None  # the final daily metrics
    member: MemberSnapshot | None = None


@dataclass
class _Earn:
    key: tuple[int, int]  # (event pk, rule id)
    event: EventRecord
    rule_id: int
    demand: int
    points: int
    adjusted: int = 0
    reversed: int = 0  # negative
    movable: bool = True

    @property
    def order(self) -> tuple[datetime, str, int]:
        return (self.event.occurred_at, self.event.event_id, self.event.pk)


@dataclass
class _State:
    assignments: dict[int, AssignmentSnapshot] = field(default_factory=dict)
    days: dict[date, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(dict))
    buckets: dict[str, int] = field(default_factory=dict)
    earns: list[_Earn] = field(default_factory=list)
    by_event: dict[int, list[_Earn]] = field(default_factory=lambda: defaultdict(list))
    refunded: dict[int, Decimal] = field(default_factory=dict)
    records: dict[int, EventRecord] = field(default_factory=dict)
    event_points: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    hits: Counter[tuple[str, int]] = field(default_factory=Counter)
    last_event_at: datetime | None = None
    events: int = 0

    def fork(self) -> "_State":
        earns = {id(e): replace(e) for e in self.earns}
        by_event: dict[int, list[_Earn]] = defaultdict(list)
        for pk, items in self.by_event.items():
            by_event[pk] = [earns[id(e)] for e in items]
        days: dict[date, dict[str, Decimal]] = defaultdict(dict)
        days.update({d: dict(v) for d, v in self.days.items()})
        return _State(
            assignments=dict(self.assignments),
            days=days,
            buckets=dict(self.buckets),
            earns=list(earns.values()),
            by_event=by_event,
            refunded=dict(self.refunded),
            records=dict(self.records),
            event_points=defaultdict(int, self.event_points),
            hits=Counter(self.hits),
            last_event_at=self.last_event_at,
            events=self.events,
        )


def replay(
    history: MemberHistory,
    baseline: Program,
    scenario: Program | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[MemberOutcome, MemberOutcome | None]:
    """The member's outcome under ``baseline`` and (forked at ``start``) under ``scenario``."""
    steps = list(_steps(history, end))
    state = _State()
    forked: _State | None = None
    for at, kind, item in steps:
        if forked is None and scenario is not None and (start is None or at >= start):
            forked = state.fork()
        _step(state, history, baseline, kind, item, at)
        if forked is not None and scenario is not None:
            _step(forked, history, scenario, kind, item, at)
    if scenario is not None and forked is None:
        forked = state.fork()
    last = end or (steps[-1][0] if steps else history.member.registered_at)
    if end is not None:
        _evaluate(state, history, baseline, end, "review", None)
        if forked is not None and scenario is not None:
            _evaluate(forked, history, scenario, end, "review", None)
    base = _outcome(state, history, baseline, last)
    if forked is None or scenario is None:
        return base, None
    return base, _outcome(forked, history, scenario, last)


def _steps(history: MemberHistory, end: datetime | None) -> Iterator[tuple[datetime, int, Any]]:
    """Facts and runs in time order (a fact at the same instant as a run goes first)."""
    runs = [(at, 1, list(group)) for at, group in groupby(history.events, key=lambda e: e.processed_at)]
    facts = [(fact.at, 0, fact) for fact in history.facts]
    for at, kind, item in sorted([*facts, *runs], key=lambda step: (step[0], step[1])):
        if end is not None and at > end:
            return
        yield at, kind, item


def _step(state: _State, history: MemberHistory, program: Program, kind: int, item: Any, at: datetime) -> None:
    if kind == 1:
        _run(state, history, program, item, at)
    else:
        _fact(state, history, program, item)


def _fact(state: _State, history: MemberHistory, program: Program, fact: TierFact) -> None:
    spec = program.tier_type(fact.tier_type_id)
    if fact.kind == "remove":
        state.assignments.pop(fact.tier_type_id, None)
        return
    if fact.kind == "evaluate" or spec is None or fact.tier_id is None:
        if spec is not None:
            _evaluate(state, history, program, fact.at, fact.source, fact.kinds, only=spec.id)
        return
    current = state.assignments.get(spec.id)
    held = current.tier_id if current is not None else None
    if current is None:
        current = enroll(fact.tier_id, fact.at, fact.source)
    elif current.tier_id != fact.tier_id:
        current = replace(current, tier_id=fact.tier_id, since=fact.at)
    current = replace(current, source=fact.source, lock_until=fact.lock_until, expires_at=fact.expires_at)
    if fact.source == "rollback":
        granted = rolled_back_claims(spec, current.granted, held, fact.tier_id, fact.at, program.tz, fact.expires_at)
        current = replace(current, granted=granted)
    elif fact.source in CLAIM_SOURCES:
        claim = grant_claim(spec, fact.tier_id, fact.at, program.tz, fact.expires_at)
        current = replace(current, granted=with_manual_grant(current.granted, claim))
    state.assignments[spec.id] = current


def _run(state: _State, history: MemberHistory, program: Program, events: list[EventRecord], now: datetime) -> None:
    held = dict(state.assignments)  # point multipliers: the tiers held before the run
    for event in events:
        state.records[event.pk] = event
        state.events += 1
        original = None
        if event.refund_of is not None and event.refund_of in state.records:
            original = state.records[event.refund_of]
            refunded = state.refunded.get(original.pk, Decimal(0)) + (event.amount or Decimal(0))
            state.refunded[original.pk] = refunded
            original = replace(original, refunded_amount=refunded)
            points = _reverse(state, program, event, original)
        elif event.refund_of is not None:
            points = 0  # a refund of an event outside the history: nothing to reverse
        elif program.point_rules:
            points = _earn(state, program, event, held)
        else:
            points = 0
        state.event_points[event.pk] += points
        _add(state, contributions(event, _tenant(program), original=original, points=points))
    latest = max(event.occurred_at for event in events)
    if state.last_event_at is None or latest > state.last_event_at:
        state.last_event_at = latest
    _evaluate(state, history, program, now, "auto", None)


def _tenant(program: Program) -> Tenant:
    if program.tenant is None:
        raise ValueError("A replay needs the program's tenant (simulation.config.program sets it).")
    return program.tenant


def _add(state: _State, values: dict[tuple[date, str], Decimal]) -> None:
    for (day, metric), value in values.items():
        row = state.days[day]
        row[metric] = row.get(metric, Decimal(0)) + value


def _earn(state: _State, program: Program, event: EventRecord, held: dict[int, AssignmentSnapshot]) -> int:
    tz = program.tz
    keys = bucket_keys(event.occurred_at, tz)
    names = capped_bucket_names(program.point_rules, program.policy, keys)
    used = {name: state.buckets[key] for name, key in names.items() if key in state.buckets}
    awards: tuple[Award, ...] = calculate(
        rules=program.point_rules,
        modifiers=program.modifiers,
        event=point_event(event),
        tier_multipliers={tt: program.tier_multipliers.get(a.tier_id, Decimal(1)) for tt, a in held.items()},
        held_tier_ids=frozenset(a.tier_id for a in held.values()),
        policy=program.policy,
        used=used,
        tz=tz,
    )
    awards = tuple(a for a in awards if a.uncapped or a.points)
    if not awards:
        return 0
    if any(cut_by_period(a) for a in awards) and not any(a.pool_used for a in awards):
        awards = _reallocate(state, program, event, awards)
    pooled = {m.code for m in program.modifiers if m.campaign_total is not None}
    for award in awards:
        earn = _Earn(
            key=(event.pk, award.rule_id),
            event=event,
            rule_id=award.rule_id,
            demand=award.demand,
            points=award.points,
            movable=not (award.capped_by or "").startswith("pool:")
            and not any(m.code in pooled for m in award.modifiers),
        )
        state.earns.append(earn)
        state.by_event[event.pk].append(earn)
        _count(state, award.rule_id, keys, award.points)
        state.hits[("points", award.rule_id)] += 1
    return sum(a.points for a in awards)


def _count(state: _State, rule_id: int | None, keys: dict[str, str], points: int) -> None:
    for key in award_buckets(rule_id, keys):
        state.buckets[key] = state.buckets.get(key, 0) + points


def _reallocate(state: _State, program: Program, event: EventRecord, awards: tuple[Award, ...]) -> tuple[Award, ...]:
    """``points.caps.reallocate_after`` over the in-memory ledger."""
    order = (event.occurred_at, event.event_id, event.pk)
    reach = horizon(event.occurred_at, program.tz)
    while True:
        movable = sorted(
            (
                e
                for e in state.earns
                if e.movable
                and not e.reversed
                and e.event.pk != event.pk
                and event.occurred_at <= e.event.occurred_at < reach
                and e.order > order
            ),
            key=lambda e: (e.order, e.rule_id),
        )
        later = [
            LaterEarn(
                key=e.key,
                rule_id=e.rule_id,
                occurred_at=e.event.occurred_at,
                demand=e.demand,
                current=e.points + e.adjusted,
            )
            for e in movable
        ]
        outcome = reallocate(
            awards=awards,
            occurred_at=event.occurred_at,
            later=later,
            totals=state.buckets,
            rules=program.point_rules,
            policy=program.policy,
            tz=program.tz,
        )
        if outcome.reach <= reach:
            break
        reach = outcome.reach
    for earn in movable:
        if earn.key not in outcome.changed:
            continue
        delta = outcome.changed[earn.key][0] - (earn.points + earn.adjusted)
        earn.adjusted += delta
        _count(state, earn.rule_id, bucket_keys(earn.event.occurred_at, program.tz), delta)
        state.event_points[earn.event.pk] += delta
        _add(state, points_contributions(earn.event, _tenant(program), delta))
    return outcome.awards


def _reverse(state: _State, program: Program, refund: EventRecord, original: EventRecord) -> int:
    """``points.services.reverse_refunded_points`` over the in-memory ledger; → minus what it reversed."""
    if not original.amount:
        return 0
    earned = state.by_event.get(original.pk, [])
    due = dict(
        refund_reversals(
            [(e.key, e.points) for e in earned],
            {e.key: e.reversed for e in earned if e.reversed},
            original.refunded_amount,
            original.amount,
        )
    )
    keys = bucket_keys(original.occurred_at, program.tz)
    total = 0
    for earn in earned:
        amount = due.get(earn.key, 0)
        if amount:
            earn.reversed -= amount
            _count(state, earn.rule_id, keys, -amount)
            total += amount
    return -total


def _evaluate(
    state: _State,
    history: MemberHistory,
    program: Program,
    now: datetime,
    source: str,
    kinds: frozenset[str] | None,
    only: int | None = None,
) -> None:
    """``tiers.assignments.evaluate_member_tiers`` in memory: enrol where nothing is held, decide, settle."""
    metrics = DailyMetrics(state.days)
    member = replace(history.member, last_event_at=state.last_event_at)
    for spec in program.tier_types:
        if only is not None and spec.id != only:
            continue
        assignment = state.assignments.get(spec.id)
        if assignment is None:
            assignment = enroll(spec.default_tier().id, now, source)
        decision = evaluate(spec, member, assignment, metrics, now, program.tz)
        applies = decision.changed and (kinds is None or decision.kind in kinds)
        if decision.changed and not applies:
            state.assignments[spec.id] = assignment
            continue
        if applies and decision.rule_id is not None:
            state.hits[(decision.kind, decision.rule_id)] += 1
        state.assignments[spec.id] = settle(assignment, decision, now, source)


def _outcome(state: _State, history: MemberHistory, program: Program, now: datetime) -> MemberOutcome:
    return MemberOutcome(
        tiers={tt: a.tier_id for tt, a in state.assignments.items()},
        points=sum(state.event_points.values()),
        event_points=dict(state.event_points),
        rule_hits=Counter(state.hits),
        events=state.events,
        benefits=_benefits(state, history, program, now),
        assignments=dict(state.assignments),
        metrics=DailyMetrics(state.days),
        member=replace(history.member, last_event_at=state.last_event_at),
    )


def _benefits(state: _State, history: MemberHistory, program: Program, now: datetime) -> frozenset[int]:
    """The tier benefits of the tiers held at the end (conditional benefits judged on the replayed
    metrics)."""
    member = replace(history.member, last_event_at=state.last_event_at)
    tiers = {tt: a.tier_id for tt, a in state.assignments.items()}
    return entitled_benefits(program, tiers, DailyMetrics(state.days), member, now)


def entitled_benefits(
    program: Program, tiers: Mapping[int, int], metrics: DailyMetrics, member: MemberSnapshot, now: datetime
) -> frozenset[int]:
    """``benefits.engine.tier_benefits`` for ``tiers`` (tier type id → tier id) at ``now``, conditional
    benefits judged on ``metrics``: what the live sync would grant a member holding those tiers."""
    if not program.benefit_mappings:
        return frozenset()
    held = []
    for tier_type_id, tier_id in tiers.items():
        spec = program.tier_type(tier_type_id)
        tier = spec.tier(tier_id) if spec is not None else None
        if tier is not None:
            held.append(
                HeldTier(tier.id, tier_type_id, tier.rank, tier.code, program.type_priority.get(tier_type_id, 0))
            )

    def holds(criteria: tuple) -> bool:
        return criteria_hold(criteria, metrics=metrics, member=member, now=now, tz=program.tz)

    return frozenset(
        tier_benefits(
            catalog=program.benefits, mappings=program.benefit_mappings, held=held, now=now, criteria_hold=holds
        )
    )


def tiers_at(outcomes: Iterable[MemberOutcome]) -> Counter[tuple[int, int]]:
    """(tier type id, tier id) → members, over outcomes."""
    counts: Counter[tuple[int, int]] = Counter()
    for outcome in outcomes:
        counts.update(outcome.tiers.items())
    return counts

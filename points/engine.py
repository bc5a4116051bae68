"""The points engine: pure calculation of an event's points (DOMAIN §4). No ORM, no clock, no I/O.

``points = round(base × tier_multiplier × modifiers) + bonus_points``, in ``Decimal``, rounded once by
the rule's ``rounding``; then caps. The caller passes what the cap buckets already hold (``used``) and
applies the returned awards to its counters atomically; :func:`calculate` never lets an award exceed
any remaining allowance.

Choices where DOMAIN.md is silent (each is tested):

* Rules: an empty ``event_types`` list matches any type; blank product/partner/source/channel match
  any. ``min_amount`` needs an amount. Effectiveness is judged at the event's ``occurred_at``. Within a
  ``group`` the highest ``priority`` wins, ties to the lower id; awards are listed in that order.
* Modifiers: an **exclusive** modifier does not stack: when any exclusive modifier applies, the one
  with the largest multiplier is the only modifier of that award. Otherwise every applying modifier's
  multiplier multiplies. ``days_of_week`` are tenant-time weekdays, 0 = Monday. A modifier's
  ``bonus_points`` are added once per event, to the first award it applies to.
* A ``campaign_total`` pool limits what the campaign adds: the award without the modifiers is always
  given; the uplift (extra multiplier points and bonus) is granted only while the pool has points
  left, and is counted against every pooled modifier of the award.
* Caps: per event (rule, and the tenant policy across the event's awards), per member per calendar
  day / ISO week / month of ``occurred_at`` (rule and policy). ``capped_by`` names the allowance that
  bit: ``rule:event``, ``rule:day``, …, ``global:month``, ``pool:<modifier code>``.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import TypeVar

from members.types import EventFacts
from points.buckets import PERIODS, cut_by_period, horizon, period_caps, share_buckets
from points.types import (
    AppliedModifier,
    Award,
    CapShare,
    ConversionRuleSpec,
    LaterEarn,
    ModifierSpec,
    PointEvent,
    Policy,
    Reallocation,
)

K = TypeVar("K", bound=Hashable)
ONE = Decimal(1)
ZERO = Decimal(0)
_ROUNDING = {"down": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "up": ROUND_CEILING}


def point_event(event: EventFacts) -> PointEvent:
    """A member event as the points engine reads it."""
    return PointEvent(
        type=event.type,
        occurred_at=event.occurred_at,
        amount=event.amount,
        quantities={k: Decimal(str(v)) for k, v in event.quantities.items()},
        product=event.product,
        partner=event.partner,
        source=event.source,
        channel=event.channel,
        campaign_code=event.campaign_code,
    )


def _effective(start: datetime | None, end: datetime | None, at: datetime) -> bool:
    return (start is None or start <= at) and (end is None or at < end)


def rule_matches(rule: ConversionRuleSpec, event: PointEvent) -> bool:
    if rule.status != "active" or not _effective(rule.effective_from, rule.effective_until, event.occurred_at):
        return False
    if rule.event_types and event.type not in rule.event_types:
        return False
    for name in ("product", "partner", "source", "channel"):
        wanted = getattr(rule, name)
        if wanted and getattr(event, name) != wanted:
            return False
    return rule.min_amount is None or (event.amount is not None and event.amount >= rule.min_amount)


def base_points(rule: ConversionRuleSpec, event: PointEvent) -> Decimal:
    """The rule's base before multipliers: per amount unit (whole units only), per event, per quantity."""
    if rule.base == "per_amount":
        if event.amount is None or not rule.unit_amount:
            return ZERO
        return (event.amount / rule.unit_amount).to_integral_value(ROUND_FLOOR) * rule.points_per_unit
    if rule.base == "per_event":
        return Decimal(rule.points_per_unit)
    quantity = Decimal(str(event.quantities.get(rule.quantity_name, 0)))
    return quantity * rule.points_per_unit


def select_rules(rules: Sequence[ConversionRuleSpec], event: PointEvent) -> list[ConversionRuleSpec]:
    """The matching rules that apply: the best of each group, in deciding order."""
    best: dict[str, ConversionRuleSpec] = {}
    for rule in sorted((r for r in rules if rule_matches(r, event)), key=lambda r: (-r.priority, r.id)):
        best.setdefault(rule.group, rule)
    return sorted(best.values(), key=lambda r: (-r.priority, r.id))


def modifier_applies(
    modifier: ModifierSpec, rule: ConversionRuleSpec, event: PointEvent, held_tier_ids: frozenset[int], tz: tzinfo
) -> bool:
    if modifier.status != "active" or not _effective(modifier.starts_at, modifier.ends_at, event.occurred_at):
        return False
    if modifier.days_of_week and event.occurred_at.astimezone(tz).weekday() not in modifier.days_of_week:
        return False
    if modifier.event_types and event.type not in modifier.event_types:
        return False
    if modifier.rule_ids and rule.id not in modifier.rule_ids:
        return False
    if modifier.product and event.product != modifier.product:
        return False
    if modifier.partner and event.partner != modifier.partner:
        return False
    if modifier.campaign_code and event.campaign_code != modifier.campaign_code:
        return False
    return not modifier.tier_ids or bool(held_tier_ids & set(modifier.tier_ids))


def stack(modifiers: Sequence[ModifierSpec]) -> list[ModifierSpec]:
    """Which of the applying modifiers count: the largest exclusive one alone, or all the others."""
    exclusive = [m for m in modifiers if m.exclusive]
    if exclusive:
        return [max(exclusive, key=lambda m: (m.multiplier, -m.id))]
    return list(modifiers)


def round_points(value: Decimal, mode: str) -> int:
    return int(value.to_integral_value(_ROUNDING[mode]))


def _tightest(points: int, limits: list[tuple[int, str]]) -> tuple[int, str | None]:
    """``points`` cut to the smallest limit (never below zero), and the name of that limit if it cut."""
    for limit, name in sorted(limits, key=lambda item: item[0]):
        if max(0, limit) < points:
            return max(0, limit), name
        break
    return points, None


def calculate(
    *,
    rules: Sequence[ConversionRuleSpec],
    modifiers: Sequence[ModifierSpec],
    event: PointEvent,
    tier_multipliers: Mapping[int, Decimal],
    held_tier_ids: frozenset[int],
    policy: Policy,
    used: Mapping[str, int],
    tz: tzinfo,
) -> tuple[Award, ...]:
    """The event's awards. ``tier_multipliers`` maps a tier type id to the multiplier of the tier the
    member holds there (before this event); ``used`` holds what the cap buckets of this event's day,
    week and month already contain (``rule:<id>:<period>``, ``global:<period>``) and what each pool
    has given (``pool:<modifier id>``)."""
    awards: list[Award] = []
    global_event_left = policy.cap_per_event
    taken: dict[str, int] = {}  # this event's own draw on shared allowances
    bonus_given: set[int] = set()
    for rule in select_rules(rules, event):
        base = base_points(rule, event)
        tier = tier_multipliers.get(rule.tier_type_id, ONE) if rule.tier_type_id is not None else ONE
        applying = stack([m for m in modifiers if modifier_applies(m, rule, event, held_tier_ids, tz)])
        multiplier = ONE
        bonus = 0
        applied = []
        for modifier in applying:
            multiplier *= modifier.multiplier
            extra = modifier.bonus_points if modifier.id not in bonus_given else 0
            bonus_given.add(modifier.id)
            bonus += extra
            applied.append(AppliedModifier(modifier.code, modifier.multiplier, extra))
        plain = round_points(base * tier, rule.rounding)
        uncapped = round_points(base * tier * multiplier, rule.rounding) + bonus
        limits: list[tuple[int, str]] = []
        pooled = [m for m in applying if m.campaign_total is not None]
        pool_used: dict[int, int] = {}
        points = uncapped
        if pooled and uncapped > plain:
            left = min(
                m.campaign_total - used.get(f"pool:{m.id}", 0) - taken.get(f"pool:{m.id}", 0)  # type: ignore[operator]
                for m in pooled
            )
            uplift = min(uncapped - plain, max(0, left))
            if uplift < uncapped - plain:
                code = min(pooled, key=lambda m: m.campaign_total - used.get(f"pool:{m.id}", 0)).code  # type: ignore[operator]
                limits.append((plain + uplift, f"pool:{code}"))
            pool_used = {m.id: uplift for m in pooled}
        if rule.cap_per_event is not None:
            limits.append((rule.cap_per_event, "rule:event"))
        if global_event_left is not None:
            limits.append((global_event_left, "global:event"))
        demand, capped_by = _tightest(points, limits)
        periods: list[tuple[int, str]] = []
        for period in PERIODS:
            cap = getattr(rule, f"cap_per_{period}")
            if cap is not None:
                periods.append((cap - used.get(f"rule:{rule.id}:{period}", 0), f"rule:{period}"))
            gcap = getattr(policy, f"cap_per_{period}")
            if gcap is not None:
                periods.append(
                    (gcap - used.get(f"global:{period}", 0) - taken.get(f"global:{period}", 0), f"global:{period}")
                )
        points, period_cap = _tightest(demand, periods)
        capped_by = period_cap or capped_by
        if pooled:
            granted_uplift = max(0, points - plain)
            pool_used = {m.id: min(pool_used[m.id], granted_uplift) for m in pooled}
            for m_id, value in pool_used.items():
                taken[f"pool:{m_id}"] = taken.get(f"pool:{m_id}", 0) + value
        if global_event_left is not None:
            global_event_left -= points
        for period in PERIODS:
            taken[f"global:{period}"] = taken.get(f"global:{period}", 0) + points
        awards.append(
            Award(
                rule_id=rule.id,
                rule_code=rule.code,
                base=base,
                tier_multiplier=tier,
                modifiers=tuple(applied),
                uncapped=uncapped,
                points=points,
                capped_by=capped_by,
                pool_used=pool_used,
                demand=demand,
            )
        )
    return tuple(awards)


def allocate(
    shares: Sequence[CapShare], caps: Mapping[str, int], used: Mapping[str, int]
) -> dict[Hashable, tuple[int, str | None]]:
    """Period caps allocated in the order given (``occurred_at`` order): each share gets its demand cut
    to what its capped buckets have left after the shares before it (``used``: what the buckets hold
    apart from these shares). → key → (points, the allowance that cut it)."""
    held = dict(used)
    result: dict[Hashable, tuple[int, str | None]] = {}
    for share in shares:
        limits = [(caps[key] - held.get(key, 0), name) for name, key in share.buckets if key in caps]
        points, capped_by = _tightest(share.demand, limits)
        for _, key in share.buckets:
            held[key] = held.get(key, 0) + points
        result[share.key] = (points, capped_by)
    return result


def reallocate(
    *,
    awards: Sequence[Award],
    occurred_at: datetime,
    later: Sequence[LaterEarn],
    totals: Mapping[str, int],
    rules: Sequence[ConversionRuleSpec],
    policy: Policy,
    tz: tzinfo,
) -> Reallocation:
    """In-order allocation around a late event (see ``points.caps``): its ``awards`` (not yet counted
    anywhere) take their share first, then the ``later`` earns (oldest first) get what is left.
    ``totals`` are the stored bucket totals (they include the later earns' current points)."""
    caps = period_caps(rules, policy)
    own = [
        CapShare(key=("own", i), demand=a.demand, buckets=share_buckets(a.rule_id, occurred_at, tz))
        for i, a in enumerate(awards)
    ]
    theirs = [CapShare(key=e.key, demand=e.demand, buckets=share_buckets(e.rule_id, e.occurred_at, tz)) for e in later]
    touched = {key for share in own + theirs for _, key in share.buckets}
    capped = {key: cap for key in touched if (cap := caps.get(key.rsplit(":", 1)[0])) is not None}
    used = {key: totals.get(key, 0) for key in touched}
    for earn, share in zip(later, theirs, strict=True):  # the buckets apart from what is re-allocated
        for _, key in share.buckets:
            used[key] -= earn.current
    result = allocate(own + theirs, capped, used)
    changed = {e.key: result[e.key] for e in later if result[e.key][0] != e.current}
    moved = [e.occurred_at for e in later if e.key in changed]
    return Reallocation(
        awards=tuple(
            replace(a, points=result[("own", i)][0], capped_by=result[("own", i)][1] or _event_cap(a))
            for i, a in enumerate(awards)
        ),
        changed=changed,
        reach=max(horizon(at, tz) for at in [occurred_at, *moved]),
    )


def touched_buckets(awards: Sequence[Award], occurred_at: datetime, later: Sequence[LaterEarn], tz: tzinfo) -> set[str]:
    """The stored buckets :func:`reallocate` reads."""
    return {
        key
        for rule_id, at in [*((a.rule_id, occurred_at) for a in awards), *((e.rule_id, e.occurred_at) for e in later)]
        for _, key in share_buckets(rule_id, at, tz)
    }


def _event_cap(award: Award) -> str | None:
    """The per-event cap or pool that cut the demand, if any (what remains once no period cap cuts)."""
    return award.capped_by if award.capped_by and not cut_by_period(award) else None


def refund_reversals(
    earned: Sequence[tuple[K, int]], reversed_so_far: Mapping[K, int], refunded: Decimal, amount: Decimal
) -> list[tuple[K, int]]:
    """What a refund reverses (DOMAIN §4.5), pro rata: each earn ``(key, points)`` is reversed down to
    ``floor(points × refunded / amount)`` in all (``refunded`` includes this refund;
    ``reversed_so_far`` holds earlier reversals as negative numbers), so partial refunds never reverse
    more than was awarded and a full refund reverses exactly everything. → (key, points to reverse > 0)."""
    if not amount:
        return []
    share = min(ONE, refunded / amount)
    out = []
    for key, points in earned:
        due = int((Decimal(points) * share).to_integral_value(ROUND_FLOOR)) + reversed_so_far.get(key, 0)
        if due > 0:
            out.append((key, due))
    return out

"""Plain data the tier engine works on: a snapshot of one tier type's configuration, of one member,
of their assignment in that tier type, and of their daily metrics. Frozen dataclasses, no ORM."""

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import accumulate
from typing import Any

ZERO = Decimal(0)


def metric_scope(product: str, partner: str) -> str:
    """'' for all activity; '@product:<p>', '@partner:<q>' or both for a scoped tier type."""
    return (f"@product:{product}" if product else "") + (f"@partner:{partner}" if partner else "")


@dataclass(frozen=True)
class TierSpec:
    id: int
    code: str
    rank: int
    is_default: bool = False
    climbable: bool = True
    immutable: bool = False
    available_from: datetime | None = None
    available_until: datetime | None = None

    def available(self, at: datetime) -> bool:
        return (self.available_from is None or self.available_from <= at) and (
            self.available_until is None or at < self.available_until
        )


@dataclass(frozen=True)
class CriterionSpec:
    metric: str
    operator: str
    value: Any
    window_days: int | None = None


@dataclass(frozen=True)
class RuleSpec:
    id: int
    code: str
    direction: str  # promotion | demotion
    target_tier_id: int | None
    criteria: tuple[CriterionSpec, ...]
    combinator: str = "any"  # any | all
    priority: int = 0
    status: str = "active"
    effective_from: datetime | None = None
    effective_until: datetime | None = None

    def effective(self, at: datetime) -> bool:
        return (
            self.status == "active"
            and (self.effective_from is None or self.effective_from <= at)
            and (self.effective_until is None or at < self.effective_until)
        )


@dataclass(frozen=True)
class TierTypeSpec:
    id: int
    code: str
    tiers: tuple[TierSpec, ...]  # any order; the engine sorts by rank
    rules: tuple[RuleSpec, ...] = ()
    mode: str = "hybrid"  # dynamic | hybrid | fixed
    qualification: str = "calendar_year"  # rolling | calendar_year | calendar_month | anniversary | lifetime
    window_days: int | None = None
    validity: str = (
        "end_of_next_period"  # while_qualified | end_of_period | end_of_next_period | fixed_days | indefinite
    )
    validity_days: int | None = None
    grace_days: int = 0
    demotion_step: str = "to_qualified"  # to_qualified | one_tier
    product: str = ""
    partner: str = ""

    @property
    def scope(self) -> str:
        """The suffix of the metric names this tier type reads (``tiers.metrics.scoped``): activity
        of its product and/or partner only, or all activity when both are blank."""
        return metric_scope(self.product, self.partner)

    def by_rank(self) -> tuple[TierSpec, ...]:
        return tuple(sorted(self.tiers, key=lambda t: t.rank))

    def tier(self, tier_id: int | None) -> TierSpec | None:
        return next((t for t in self.tiers if t.id == tier_id), None)

    def default_tier(self) -> TierSpec:
        defaults = [t for t in self.tiers if t.is_default]
        return defaults[0] if defaults else self.by_rank()[0]


@dataclass(frozen=True)
class Claim:
    """A right to hold ``tier_id`` until ``ends_at`` (None = forever), plus the grace days unless
    ``grace`` is False (a manual grant with an explicit expiry ends exactly then)."""

    tier_id: int
    ends_at: datetime | None
    source: str  # rule | manual | soft_landing
    rule_id: int | None = None
    grace: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier_id": self.tier_id,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "source": self.source,
            "rule_id": self.rule_id,
            "grace": self.grace,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Claim":
        ends = data.get("ends_at")
        return cls(
            tier_id=int(data["tier_id"]),
            ends_at=datetime.fromisoformat(ends) if ends else None,
            source=str(data.get("source", "manual")),
            rule_id=data.get("rule_id"),
            grace=bool(data.get("grace", True)),
        )


@dataclass(frozen=True)
class MemberSnapshot:
    registered_at: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)
    last_event_at: datetime | None = None


@dataclass(frozen=True)
class AssignmentSnapshot:
    """The member's current position in one tier type and the state that is not derived from events:
    claims granted by manual changes and soft landings, the instant before which earned claims are void
    (set when a demotion rule fired), and when that last happened."""

    tier_id: int
    since: datetime
    enrolled_at: datetime
    source: str = "auto"
    lock_until: datetime | None = None
    expires_at: datetime | None = None
    granted: tuple[Claim, ...] = ()
    claims_void_before: datetime | None = None
    last_rule_demotion_at: datetime | None = None


class DailyMetrics:
    """A member's metric totals per local day (tenant time), with O(log n) sums over any date range.

    ``days`` maps a date to {metric name: value}; metric names as in DOMAIN §3.3 (``spend``,
    ``transactions``, ``points``, ``quantity:<name>``, ``events:<type>``).
    """

    def __init__(self, days: Mapping[date, Mapping[str, Decimal | int]] | None = None):
        self._dates = sorted(days or {})
        self._days = {d: dict(v) for d, v in (days or {}).items()}
        self._prefix: dict[str, list[Decimal]] = {}
        self._falls: dict[str, list[int]] = {}

    @property
    def first_day(self) -> date | None:
        return self._dates[0] if self._dates else None

    def _prefix_for(self, metric: str) -> list[Decimal]:
        if metric not in self._prefix:
            values = (Decimal(self._days[d].get(metric, 0)) for d in self._dates)
            self._prefix[metric] = [ZERO, *accumulate(values)]
        return self._prefix[metric]

    def total(self, metric: str, start: date | None, end: date) -> Decimal:
        """Sum of ``metric`` over local days ``start`` .. ``end`` inclusive (``start`` None = since ever)."""
        prefix = self._prefix_for(metric)
        lo = 0 if start is None else bisect_left(self._dates, start)
        hi = bisect_right(self._dates, end)
        return prefix[hi] - prefix[lo] if hi > lo else ZERO

    def never_falls(self, metric: str, start: date, end: date) -> bool:
        """Whether no day of ``start`` .. ``end`` lowers ``metric`` (no negative day, as a refund makes), so
        its running total from any day on only rises."""
        if metric not in self._falls:
            negative = (1 if self._days[d].get(metric, 0) < 0 else 0 for d in self._dates)
            self._falls[metric] = [0, *accumulate(negative)]
        falls = self._falls[metric]
        return falls[bisect_right(self._dates, end)] == falls[bisect_left(self._dates, start)]

    def active_days(self, start: date | None, end: date) -> list[date]:
        lo = 0 if start is None else bisect_left(self._dates, start)
        return self._dates[lo : bisect_right(self._dates, end)]


@dataclass(frozen=True)
class TierDecision:
    """What the engine concludes for one tier type at ``now``.

    ``to_tier_id`` differs from the current tier when the member should move; ``kind`` says why
    (``promotion``, ``demotion``, ``expiry``, ``time_bound_end`` or ``none``), ``rule_id`` names the rule
    that decided it (if any), ``valid_until`` is the latest claim end on the resulting tier or higher.
    """

    from_tier_id: int
    to_tier_id: int
    kind: str
    reason: str
    rule_id: int | None
    valid_until: datetime | None
    entitled_tier_id: int
    claims: tuple[Claim, ...]
    granted: tuple[Claim, ...]
    claims_void_before: datetime | None = None

    @property
    def changed(self) -> bool:
        return self.from_tier_id != self.to_tier_id

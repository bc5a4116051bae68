"""Plain data the points engine works on (DOMAIN §4): conversion rules, modifiers, the event, the
allowances its caps leave, and the awards that come out. Frozen dataclasses, Decimal throughout."""

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class ConversionRuleSpec:
    id: int
    code: str
    base: str  # per_amount | per_event | per_quantity
    points_per_unit: int
    unit_amount: Decimal | None = None
    quantity_name: str = ""
    event_types: tuple[str, ...] = ()  # empty = any type
    product: str = ""
    partner: str = ""
    source: str = ""
    channel: str = ""
    min_amount: Decimal | None = None
    tier_type_id: int | None = None
    group: str = "base"
    priority: int = 0
    rounding: str = "down"  # down | half_up | up
    cap_per_event: int | None = None
    cap_per_day: int | None = None
    cap_per_week: int | None = None
    cap_per_month: int | None = None
    status: str = "active"
    effective_from: datetime | None = None
    effective_until: datetime | None = None


@dataclass(frozen=True)
class ModifierSpec:
    id: int
    code: str
    multiplier: Decimal = Decimal(1)
    bonus_points: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    days_of_week: tuple[int, ...] = ()  # 0 = Monday … 6 = Sunday, in tenant time; empty = every day
    event_types: tuple[str, ...] = ()
    rule_ids: tuple[int, ...] = ()
    product: str = ""
    partner: str = ""
    tier_ids: tuple[int, ...] = ()  # the member must hold one of these; empty = any
    campaign_code: str = ""
    exclusive: bool = False
    campaign_total: int | None = None
    status: str = "active"


@dataclass(frozen=True)
class PointEvent:
    type: str
    occurred_at: datetime
    amount: Decimal | None = None
    quantities: Mapping[str, Decimal] = field(default_factory=dict)
    product: str = ""
    partner: str = ""
    source: str = ""
    channel: str = ""
    campaign_code: str = ""


@dataclass(frozen=True)
class Policy:
    """The tenant's global caps (any may be None = no cap)."""

    cap_per_event: int | None = None
    cap_per_day: int | None = None
    cap_per_week: int | None = None
    cap_per_month: int | None = None


@dataclass(frozen=True)
class AppliedModifier:
    code: str
    multiplier: Decimal
    bonus_points: int


@dataclass(frozen=True)
class Award:
    """One rule's points for one event, with its breakdown (what the transaction records)."""

    rule_id: int
    rule_code: str
    base: Decimal
    tier_multiplier: Decimal
    modifiers: tuple[AppliedModifier, ...]
    uncapped: int
    points: int
    capped_by: str | None = None
    pool_used: Mapping[int, int] = field(default_factory=dict)  # modifier id → points taken from its pool
    demand: int = 0  # the points before the day/week/month caps (after the per-event caps and pools)


@dataclass(frozen=True)
class CapShare:
    """One award as the in-order cap allocation sees it: its demand and the period buckets it draws on,
    as (allowance name, bucket key) pairs: ``("rule:week", "rule:7:week:2026-W10")``."""

    key: Hashable
    demand: int
    buckets: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LaterEarn:
    """An earn that occurred after a late event and that in-order allocation may move: its key, rule,
    instant, points before period caps (``demand``) and what it holds now (``current``, adjustments
    included)."""

    key: Hashable
    rule_id: int
    occurred_at: datetime
    demand: int
    current: int


@dataclass(frozen=True)
class Reallocation:
    """What in-order allocation gives a late event's awards and the later earns whose share changed
    (key → (points, the allowance that cut it)); ``reach`` is the end of the last bucket a changed
    earn touches: the caller must have passed every later earn up to it, or call again with more."""

    awards: tuple[Award, ...]
    changed: Mapping[Hashable, tuple[int, str | None]]
    reach: datetime

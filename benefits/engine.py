"""The benefits engine: which benefits a member should hold (DOMAIN §5). Pure: plain data in, plain
data out; conditional criteria are judged by a function the caller passes.

Choices where DOMAIN.md is silent (each is tested):

* A tier's benefits are its own mappings plus the inheritable mappings of lower-ranked tiers of the same
  tier type. A grant's ``source_ref`` is the tier the mapping belongs to (the highest-ranked one when
  several give the benefit), so a promotion does not churn grants the member keeps.
* A bundle grants its components (recursively), not itself; the components carry the bundle's source.
* Templates and inactive benefits are never granted; a benefit outside its ``valid_from`` /
  ``valid_until`` window is not granted.
* Exclusive groups are resolved after bundles are expanded, across all tier types: the highest benefit
  ``priority`` wins, then the higher tier-type ``priority``, then the lower benefit id.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class BenefitSpec:
    id: int
    code: str
    lifetime: str = "permanent"
    criteria: tuple = ()
    exclusive_group: str = ""
    priority: int = 0
    component_ids: tuple[int, ...] = ()
    is_template: bool = False
    active: bool = True
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class TierMappingSpec:
    tier_id: int
    tier_type_id: int
    rank: int
    benefit_id: int
    inheritable: bool = True
    tier_code: str = ""


@dataclass(frozen=True)
class HeldTier:
    tier_id: int
    tier_type_id: int
    rank: int
    code: str
    tier_type_priority: int = 0


@dataclass(frozen=True)
class Entitlement:
    benefit_id: int
    source_ref: str  # the tier (or campaign) it comes through
    via: tuple[str, ...] = field(default=())  # bundle codes it was expanded from


def _grantable(benefit: BenefitSpec, now: datetime) -> bool:
    return (
        benefit.active
        and not benefit.is_template
        and (benefit.valid_from is None or benefit.valid_from <= now)
        and (benefit.valid_until is None or now < benefit.valid_until)
    )


def _expand(
    benefit_id: int, catalog: Mapping[int, BenefitSpec], seen: frozenset[int] = frozenset()
) -> list[tuple[int, tuple[str, ...]]]:
    """A benefit, or a bundle's components (recursively, cycles cut), with the bundles passed through."""
    benefit = catalog.get(benefit_id)
    if benefit is None or benefit_id in seen:
        return []
    if not benefit.component_ids:
        return [(benefit_id, ())]
    out = []
    for component in benefit.component_ids:
        for found, via in _expand(component, catalog, seen | {benefit_id}):
            out.append((found, (benefit.code, *via)))
    return out


def tier_benefits(
    *,
    catalog: Mapping[int, BenefitSpec],
    mappings: Iterable[TierMappingSpec],
    held: Iterable[HeldTier],
    now: datetime,
    criteria_hold: Callable[[tuple], bool] = lambda criteria: True,
) -> dict[int, Entitlement]:
    """Benefit id → entitlement, for the tiers the member holds (see the module docstring)."""
    held = list(held)
    by_type = {h.tier_type_id: h for h in held}
    candidates: dict[int, tuple[Entitlement, int, int]] = {}  # benefit → (entitlement, source rank, type prio)
    for mapping in mappings:
        tier = by_type.get(mapping.tier_type_id)
        if tier is None:
            continue
        applies = mapping.tier_id == tier.tier_id or (mapping.inheritable and mapping.rank < tier.rank)
        if not applies:
            continue
        for benefit_id, via in _expand(mapping.benefit_id, catalog):
            benefit = catalog[benefit_id]
            if not _grantable(benefit, now):
                continue
            if benefit.lifetime == "conditional" and not criteria_hold(benefit.criteria):
                continue
            current = candidates.get(benefit_id)
            if current is None or mapping.rank > current[1]:
                source = mapping.tier_code or tier.code
                candidates[benefit_id] = (Entitlement(benefit_id, source, via), mapping.rank, tier.tier_type_priority)
    return _exclusive(candidates, catalog)


def _exclusive(
    candidates: Mapping[int, tuple[Entitlement, int, int]], catalog: Mapping[int, BenefitSpec]
) -> dict[int, Entitlement]:
    winners: dict[str, int] = {}
    for benefit_id, (_, _, type_priority) in candidates.items():
        group = catalog[benefit_id].exclusive_group
        if not group:
            continue
        best = winners.get(group)
        key = (catalog[benefit_id].priority, type_priority, -benefit_id)
        if best is None or key > (catalog[best].priority, candidates[best][2], -best):
            winners[group] = benefit_id
    return {
        benefit_id: entitlement
        for benefit_id, (entitlement, _, _) in candidates.items()
        if not catalog[benefit_id].exclusive_group or winners[catalog[benefit_id].exclusive_group] == benefit_id
    }


def campaign_benefits(
    *,
    catalog: Mapping[int, BenefitSpec],
    mappings: Iterable[tuple[int, tuple]],
    campaign_code: str,
    now: datetime,
    criteria_hold: Callable[[tuple], bool] = lambda criteria: True,
) -> dict[int, Entitlement]:
    """Benefits an event of ``campaign_code`` grants: its mappings ``(benefit id, criteria)`` whose
    criteria hold, expanded and filtered like tier benefits."""
    out: dict[int, tuple[Entitlement, int, int]] = {}
    for benefit_id, criteria in mappings:
        if criteria and not criteria_hold(criteria):
            continue
        for found, via in _expand(benefit_id, catalog):
            benefit = catalog[found]
            if _grantable(benefit, now) and (benefit.lifetime != "conditional" or criteria_hold(benefit.criteria)):
                out.setdefault(found, (Entitlement(found, campaign_code, via), 0, 0))
    return _exclusive(out, catalog)

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
* ``benefit_eligibility`` explains one benefit: every reason it would not be granted now, each with a
  stable code (``ELIGIBILITY_REASONS``). A bundle is never granted itself (its components are), so
  asking about one is answered with the single reason ``bundle``.
* ``entitled_throughout`` tells whether a sequence of held-tier states all gave a benefit (judged with
  the current mappings, ignoring validity windows and criteria): the services use it to tell "the
  member used it up (or it expired, or was revoked) and still holds the tier" from "the member lost the
  tier and regained it".
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
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


# --- explaining one benefit -----------------------------------------------------------------------
ELIGIBILITY_REASONS = (
    "bundle",  # a bundle is granted as its components
    "template",
    "inactive",
    "outside_validity",
    "not_mapped",  # no tier of a tier type the member holds gives it
    "tier_too_low",  # given from a higher tier than the one held
    "not_inheritable",  # given by a lower tier, without inheritance
    "criteria_not_met",  # a conditional benefit's criteria do not hold
    "exclusive_group_lost",  # another benefit of its exclusive group wins
    "already_granted",  # an active tier grant exists
    "already_received",  # used up, expired or revoked while the member kept a tier that gives it
    "exhausted",  # a limited quantity is all granted
)


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: tuple[Reason, ...] = ()
    source_ref: str | None = None  # the tier it would come through
    via: tuple[str, ...] = ()


def _competing(benefit: BenefitSpec) -> BenefitSpec:
    """The benefit as if it were grantable whatever its flags, window and criteria (to see what it
    wins or loses on tiers alone)."""
    return replace(benefit, active=True, is_template=False, valid_from=None, valid_until=None, lifetime="permanent")


def _tier_reasons(giving: list[TierMappingSpec], by_type: Mapping[int, HeldTier]) -> list[Reason]:
    """Why none of the mappings of a held tier type applies."""
    if not giving:
        return [Reason("not_mapped", "No tier of a tier type the member holds gives it.")]
    too_low, not_inherited = [], []
    for m in sorted(giving, key=lambda m: (m.rank, m.tier_id)):
        tier = by_type[m.tier_type_id]
        if m.rank >= tier.rank:
            too_low.append(
                Reason("tier_too_low", f"Given from {m.tier_code} (rank {m.rank}); the member holds {tier.code}.")
            )
        else:
            detail = f"Given by {m.tier_code} only (not inherited by higher tiers); the member holds {tier.code}."
            not_inherited.append(Reason("not_inheritable", detail))
    return too_low + not_inherited


def benefit_eligibility(
    *,
    benefit_id: int,
    catalog: Mapping[int, BenefitSpec],
    mappings: Iterable[TierMappingSpec],
    held: Iterable[HeldTier],
    now: datetime,
    criteria_hold: Callable[[tuple], bool] = lambda criteria: True,
    active_grant: bool = False,
    closed_grant_status: str | None = None,
    exhausted: bool = False,
) -> Eligibility:
    """Would the tier re-evaluation grant ``benefit_id`` to a member holding ``held`` now? Every
    reason it would not, in the order of ``ELIGIBILITY_REASONS``; eligible when there is none.

    The caller says what the catalog cannot: whether the member holds an active tier grant of it
    (``active_grant``), the status of a closed one received during the current entitlement
    (``closed_grant_status``), and whether its limited quantity is all granted (``exhausted``).
    """
    benefit = catalog[benefit_id]
    mappings, held = list(mappings), list(held)
    if benefit.component_ids:
        parts = ", ".join(catalog[c].code for c in benefit.component_ids if c in catalog)
        return Eligibility(
            False, (Reason("bundle", f"A bundle is granted as its components ({parts}); ask about them."),)
        )
    reasons: list[Reason] = []
    if benefit.is_template:
        reasons.append(Reason("template", "A template is never granted."))
    if not benefit.active:
        reasons.append(Reason("inactive", "The benefit is not active."))
    if (benefit.valid_from is not None and now < benefit.valid_from) or (
        benefit.valid_until is not None and now >= benefit.valid_until
    ):
        reasons.append(Reason("outside_validity", "Outside the benefit's validity window."))

    by_type = {h.tier_type_id: h for h in held}
    giving = [
        (m, via)
        for m in mappings
        if m.tier_type_id in by_type
        for found, via in _expand(m.benefit_id, catalog)
        if found == benefit_id
    ]
    applying = [
        (m, via)
        for m, via in giving
        if m.tier_id == by_type[m.tier_type_id].tier_id or (m.inheritable and m.rank < by_type[m.tier_type_id].rank)
    ]
    source = max(applying, key=lambda p: p[0].rank, default=None)
    if source is None:
        reasons += _tier_reasons([m for m, _ in giving], by_type)
    if benefit.lifetime == "conditional" and not criteria_hold(benefit.criteria):
        reasons.append(Reason("criteria_not_met", "The benefit's criteria do not hold for the member now."))
    if source is not None and benefit.exclusive_group:
        competing = {**catalog, benefit_id: _competing(benefit)}
        wins = tier_benefits(catalog=competing, mappings=mappings, held=held, now=now, criteria_hold=criteria_hold)
        group = benefit.exclusive_group
        winner = next((catalog[b] for b in wins if b != benefit_id and catalog[b].exclusive_group == group), None)
        if benefit_id not in wins and winner is not None:
            detail = f"Exclusive group {group!r}: {winner.code} (priority {winner.priority}) wins."
            reasons.append(Reason("exclusive_group_lost", detail))
    if active_grant:
        reasons.append(Reason("already_granted", "The member holds an active grant of it from their tier."))
    elif closed_grant_status is not None:
        detail = (
            f"The member's grant of it is {closed_grant_status} and they have held a tier giving it since: "
            "it is granted again only after that tier is lost and regained."
        )
        reasons.append(Reason("already_received", detail))
    elif exhausted:
        reasons.append(Reason("exhausted", "Its limited quantity is all granted."))
    return Eligibility(
        eligible=not reasons,
        reasons=tuple(reasons),
        source_ref=(source[0].tier_code or by_type[source[0].tier_type_id].code) if source else None,
        via=source[1] if source else (),
    )


def entitled_throughout(
    *,
    benefit_id: int,
    catalog: Mapping[int, BenefitSpec],
    mappings: Iterable[TierMappingSpec],
    states: Iterable[Iterable[HeldTier]],
    now: datetime,
) -> bool:
    """Whether every held-tier state gave ``benefit_id`` (through its tier, inheritance, a bundle, and
    its exclusive group), judged with the current mappings; validity windows and criteria are ignored
    (they are not known for past states). True for no states."""
    if benefit_id not in catalog:
        return False
    competing = {**catalog, benefit_id: _competing(catalog[benefit_id])}
    mappings = list(mappings)
    return all(
        benefit_id in tier_benefits(catalog=competing, mappings=mappings, held=state, now=now) for state in states
    )

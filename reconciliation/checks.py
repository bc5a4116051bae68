"""The comparisons of a reconciliation (DOMAIN §10), pure: what the replay kernel expects of one
member against what is stored. No ORM, no clock; ``reconciliation.live`` loads the stored side in bulk
and ``reconciliation.runs`` feeds both.

Codes (stable; the API and the admin show them):

- ``points_mismatch`` — an event's net points in the ledger differ from the replay's. Operators'
  reversals of an event (``rollback/points``) are not drift: the expected value includes them. Events
  that drew on a shared campaign pool are not checked (one member's replay cannot know the pool).
- ``tier_mismatch`` — the tier held in a tier type differs from the one the event log and the tier
  history qualify the member for (``tier_missing`` when the member holds none there).
- ``benefit_missing`` — a tier benefit the replayed tiers entitle the member to has no active grant,
  though the member never had it used up, expired or revoked by hand, and its stock is not exhausted.
- ``benefit_extra`` — an active tier grant the replayed tiers do not give (and the benefit is not kept
  on loss).

Benefits are judged on the tiers the member *should* hold: a tier written wrong behind the engine's back
is one ``tier_mismatch`` (its benefits are still those of the right tier), and a wrong tier whose
benefits followed it is reported on both counts; repairing the tier re-syncs the benefits either way.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # points | tiers | benefits | sync | outbox
    code: str
    subject: str
    expected: Any
    actual: Any
    ref: Any = None  # what a repair needs (an event pk, a tier id, a benefit id, a delivery pk)


def point_findings(
    *,
    expected: Mapping[int, int],
    actual: Mapping[int, int],
    operator: Mapping[int, int],
    names: Mapping[int, str],
    unchecked: Iterable[int] = (),
) -> list[Finding]:
    """Per event pk: the replay's points plus operators' reversals of it, against the ledger's sum."""
    skip = set(unchecked)
    found = []
    for pk in sorted(set(expected) | set(actual)):
        if pk in skip:
            continue
        want = expected.get(pk, 0) + operator.get(pk, 0)
        have = actual.get(pk, 0)
        if want != have:
            found.append(Finding("points", "points_mismatch", names.get(pk, str(pk)), want, have, pk))
    return found


def tier_findings(
    *,
    expected: Mapping[int, int],
    actual: Mapping[int, int],
    tier_codes: Mapping[int, str],
    type_codes: Mapping[int, str],
) -> list[Finding]:
    """Per tier type: the tier the replay ends in against the stored assignment."""
    found = []
    for tier_type_id in sorted(set(expected) | set(actual)):
        want, have = expected.get(tier_type_id), actual.get(tier_type_id)
        if want == have or want is None:
            continue  # a tier type the history never enrolled the member in is not the replay's to judge
        code = "tier_missing" if have is None else "tier_mismatch"
        found.append(
            Finding(
                "tiers",
                code,
                type_codes.get(tier_type_id, str(tier_type_id)),
                tier_codes.get(want),
                tier_codes.get(have) if have is not None else None,
                (tier_type_id, want),
            )
        )
    return found


def benefit_findings(
    *,
    entitled: Iterable[int],
    active: Iterable[int],
    closed: Iterable[int],
    exhausted: Iterable[int],
    kept_on_loss: Iterable[int],
    codes: Mapping[int, str],
) -> list[Finding]:
    """``entitled``: tier benefits the stored tiers give now; ``active``: the member's active tier grants;
    ``closed``: benefits the member had used up, expired or revoked by hand (not granted again);
    ``exhausted``: benefits out of stock; ``kept_on_loss``: benefits a member keeps after the tier."""
    entitled, active = set(entitled), set(active)
    missing = entitled - active - set(closed) - set(exhausted)
    extra = active - entitled - set(kept_on_loss)
    return [
        *(Finding("benefits", "benefit_missing", codes.get(b, str(b)), "active", None, b) for b in sorted(missing)),
        *(Finding("benefits", "benefit_extra", codes.get(b, str(b)), None, "active", b) for b in sorted(extra)),
    ]

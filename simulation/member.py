"""Member simulation (DOMAIN §9): what the engine says about one member now — under the live
configuration or a scenario, with hypothetical events or without — replayed by the kernel from the
member's stored history. Reads only: nothing is written, no message is emitted.

Choices where DOMAIN.md is silent:

* The member's history runs under the live configuration up to now; a scenario applies from now (as
  if published this instant), and the hypothetical events are one run processed now, in the order
  given, after everything stored.
* A hypothetical refund names a stored event of the member (or an earlier hypothetical one) by
  ``refund_of`` and the same ``source``; otherwise it is a 422 naming ``events[i].refund_of``.
* Each hypothetical event's result shows its points; the run's tier changes are reported on its last
  event, as live processing reports them.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from config.errors import Invalid
from members.models import Member
from simulation.config import Program, program
from simulation.kernel import EventRecord, MemberHistory, MemberOutcome, replay
from simulation.loader import histories
from simulation.models import Scenario
from tenancy.models import Tenant
from tiers.engine import evaluate
from tiers.progress import progress


@dataclass(frozen=True)
class TierView:
    """A simulated position in one tier type, as ``GET /member/{id}/tier`` shows a real one."""

    tier_type_id: int
    tier_id: int
    since: datetime
    valid_until: datetime | None
    source: str
    lock_until: datetime | None
    expires_at: datetime | None
    progress: dict[str, Any] | None


@dataclass(frozen=True)
class MemberSimulation:
    tiers: list[TierView]
    events: list[dict[str, Any]]
    points: int


def simulate_member(
    *, tenant: Tenant, member: Member, events: list[dict[str, Any]], scenario: Scenario | None, now: datetime
) -> MemberSimulation:
    """The member's tiers (with progress) and each hypothetical event's result, at ``now``."""
    (history,) = histories(tenant, member.pk, member.pk)
    baseline = program(tenant)
    draft = program(tenant, scenario) if scenario is not None else None
    hypothetical = _records(history, events, now)
    before, before_draft = replay(history, baseline, draft, start=now, end=now)
    extended = replace(history, events=[*history.events, *hypothetical])
    after, after_draft = replay(extended, baseline, draft, start=now, end=now)
    config = draft or baseline
    start = before_draft or before
    end = after_draft or after
    results = [
        {
            "event_id": record.event_id,
            "source": record.source,
            "status": "simulated",
            "points": {"total": end.event_points.get(record.pk, 0)},
            "tier_changes": _changes(config, start, end) if record is hypothetical[-1] else [],
        }
        for record in hypothetical
    ]
    return MemberSimulation(
        tiers=_tiers(config, end, now),
        events=results,
        points=sum(end.event_points.get(record.pk, 0) for record in hypothetical),
    )


def _records(history: MemberHistory, events: list[dict[str, Any]], now: datetime) -> list[EventRecord]:
    known = {(e.source, e.event_id): e.pk for e in history.events}
    records: list[EventRecord] = []
    errors: dict[str, list[str]] = {}
    for index, data in enumerate(events):
        pk = -(index + 1)  # never a stored event's id
        refund_of = None
        if data["type"] == "refund":
            refund_of = known.get((data["source"], data["refund_of"]))
            if refund_of is None:
                errors[f"events[{index}].refund_of"] = ["No event of this member with this event_id and source."]
        known[(data["source"], data["event_id"])] = pk
        records.append(
            EventRecord(
                pk=pk,
                event_id=data["event_id"],
                type=data["type"],
                occurred_at=data.get("occurred_at") or now,
                processed_at=now,
                amount=data.get("amount"),
                quantities=data.get("quantities") or {},
                product=data.get("product", ""),
                partner=data.get("partner", ""),
                source=data["source"],
                channel=data.get("channel", ""),
                campaign_code=data.get("campaign_code", ""),
                qualifying=data.get("qualifying", True),
                refund_of=refund_of,
                refunded_amount=Decimal(0),
            )
        )
    if errors:
        raise Invalid(errors=errors)
    return records


def _changes(config: Program, start: MemberOutcome, end: MemberOutcome) -> list[dict[str, Any]]:
    out = []
    for spec in config.tier_types:
        before, after = start.tiers.get(spec.id), end.tiers.get(spec.id)
        if before != after:
            tier_from, tier_to = spec.tier(before or 0), spec.tier(after or 0)
            out.append(
                {
                    "tier_type": spec.code,
                    "from": tier_from.code if tier_from else None,
                    "to": tier_to.code if tier_to else None,
                }
            )
    return out


def _tiers(config: Program, outcome: MemberOutcome, now: datetime) -> list[TierView]:
    views: list[TierView] = []
    if outcome.metrics is None or outcome.member is None:
        return views
    for spec in config.tier_types:
        assignment = outcome.assignments.get(spec.id)
        if assignment is None:
            continue
        decision = evaluate(spec, outcome.member, assignment, outcome.metrics, now, config.tz)
        views.append(
            TierView(
                tier_type_id=spec.id,
                tier_id=assignment.tier_id,
                since=assignment.since,
                valid_until=decision.valid_until,
                source=assignment.source,
                lock_until=assignment.lock_until,
                expires_at=assignment.expires_at,
                progress=progress(spec, outcome.member, assignment, outcome.metrics, now, config.tz),
            )
        )
    return views

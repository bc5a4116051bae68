"""Program backtests (DOMAIN §9): baseline (the live configuration) against a scenario, over every
member (or a sample) and the events they had, in member-range chunks that Celery workers evaluate in
parallel (``simulation.tasks``); each chunk stores a mergeable partial result, the last one merges
them into the run's result (API.md "Wave 2 contract").

Choices where DOMAIN.md is silent:

* The fork is at local midnight of ``from`` (tenant time): what was processed before runs once under
  the live configuration; the rest runs twice. Tiers are read at the end of the ``to`` day, or now if
  that is later than now — so a run up to today compares with the live state, not with a future.
* Points are those of the events processed in the range (earned, reversed and re-allocated).
* A sample is the first ``sample`` members in registration order (member id order).
* Benefits compare the tier benefits members are entitled to at the end of the range.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.errors import Conflict
from simulation.config import Program, program
from simulation.kernel import MemberHistory, MemberOutcome, replay
from simulation.loader import chunks, histories
from simulation.models import AffectedMember, SimulationChunk, SimulationRun
from tenancy.models import Tenant


class RunFinished(Conflict):
    code = "run_finished"
    default_detail = "This simulation has already finished."


def window(run: SimulationRun, tz: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """[start, end] instants of the run: local midnight of ``starts``, end of the ``ends`` day (or now)."""
    start = datetime.combine(run.starts, time.min, tzinfo=tz)
    end = datetime.combine(run.ends + timedelta(days=1), time.min, tzinfo=tz) - timedelta(microseconds=1)
    return start, min(end, now)


def plan(run: SimulationRun, *, size: int | None = None) -> list[SimulationChunk]:
    """Cut the run into member-range chunks (keyset over member ids; ``SIMULATION_CHUNK_SIZE`` members
    each) and mark it running."""
    size = size or settings.SIMULATION_CHUNK_SIZE
    made = SimulationChunk.objects.bulk_create(
        SimulationChunk(tenant_id=run.tenant_id, run=run, first_member=first, last_member=last, members=n)
        for first, last, n in chunks(run.tenant, size, limit=run.sample)
    )
    now = timezone.now()
    SimulationRun.objects.filter(pk=run.pk).update(
        status=SimulationRun.Status.DONE if not made else SimulationRun.Status.RUNNING,
        chunks_total=len(made),
        members_total=sum(c.members for c in made),
        started_at=now,
        finished_at=None if made else now,
        result=None if made else render(run, merge([]), program(run.tenant), program(run.tenant, run.scenario)),
    )
    return made


def evaluate_chunk(run: SimulationRun, chunk: SimulationChunk) -> tuple[dict[str, Any], list[AffectedMember]]:
    """Replay the chunk's members under baseline and scenario: its partial result and affected members."""
    tenant = run.tenant
    baseline = program(tenant)
    scenario = program(tenant, run.scenario)
    start, end = window(run, baseline.tz, timezone.now())
    partial = _empty()
    affected: list[AffectedMember] = []
    codes = _tier_codes(baseline, scenario)
    type_codes = {t.id: t.code for t in baseline.tier_types}
    members = histories(tenant, chunk.first_member, chunk.last_member, until=end)
    if run.sample is not None:
        members = members[: chunk.members]
    for history in members:
        base, forked = replay(history, baseline, scenario, start=start, end=end)
        scen = forked or base
        _account(partial, history, base, scen, start, run.tier_type_id)
        affected.extend(_affected(run, history, base, scen, start, codes, type_codes))
    return partial, affected


def _in_range(history: MemberHistory, outcome: MemberOutcome, start: datetime) -> int:
    return sum(outcome.event_points.get(e.pk, 0) for e in history.events if e.processed_at >= start)


def _empty() -> dict[str, Any]:
    return {
        "members": 0,
        "events": 0,
        "tiers": {},
        "points": {"baseline": 0, "scenario": 0},
        "benefits": {"baseline": {}, "scenario": {}},
        "hits": {},
    }


def _account(
    partial: dict[str, Any],
    history: MemberHistory,
    base: MemberOutcome,
    scen: MemberOutcome,
    start: datetime,
    tier_type_id: int | None,
) -> None:
    partial["members"] += 1
    partial["events"] += sum(1 for e in history.events if e.processed_at >= start)
    for tt in sorted(set(base.tiers) | set(scen.tiers)):
        if tier_type_id is not None and tt != tier_type_id:
            continue
        row = partial["tiers"].setdefault(str(tt), {"baseline": {}, "scenario": {}, "transitions": {}})
        b, s = base.tiers.get(tt), scen.tiers.get(tt)
        _bump(row["baseline"], str(b))
        _bump(row["scenario"], str(s))
        if b != s:
            _bump(row["transitions"], f"{b}>{s}")
    partial["points"]["baseline"] += _in_range(history, base, start)
    partial["points"]["scenario"] += _in_range(history, scen, start)
    for benefit in base.benefits:
        _bump(partial["benefits"]["baseline"], str(benefit))
    for benefit in scen.benefits:
        _bump(partial["benefits"]["scenario"], str(benefit))
    for (kind, rule_id), n in base.rule_hits.items():
        partial["hits"].setdefault(f"{kind}:{rule_id}", [0, 0])[0] += n
    for (kind, rule_id), n in scen.rule_hits.items():
        partial["hits"].setdefault(f"{kind}:{rule_id}", [0, 0])[1] += n


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _tier_codes(*programs: Program) -> dict[int, str]:
    return {tier.id: tier.code for p in programs for spec in p.tier_types for tier in spec.tiers}


def _affected(
    run: SimulationRun,
    history: MemberHistory,
    base: MemberOutcome,
    scen: MemberOutcome,
    start: datetime,
    codes: Mapping[int, str],
    type_codes: Mapping[int, str],
) -> list[AffectedMember]:
    delta = _in_range(history, scen, start) - _in_range(history, base, start)
    rows = [
        AffectedMember(
            tenant_id=run.tenant_id,
            run=run,
            member_id=history.external_id,
            tier_type=type_codes.get(tt, ""),
            baseline=codes.get(base.tiers.get(tt, 0), ""),
            scenario=codes.get(scen.tiers.get(tt, 0), ""),
            points_delta=delta,
        )
        for tt in sorted(set(base.tiers) | set(scen.tiers))
        if base.tiers.get(tt) != scen.tiers.get(tt) and (run.tier_type_id is None or tt == run.tier_type_id)
    ]
    if not rows and delta:
        rows.append(AffectedMember(tenant_id=run.tenant_id, run=run, member_id=history.external_id, points_delta=delta))
    return rows


def merge(partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of chunk partials (the same shape)."""
    total = _empty()
    for partial in partials:
        total["members"] += partial["members"]
        total["events"] += partial["events"]
        for tt, row in partial["tiers"].items():
            into = total["tiers"].setdefault(tt, {"baseline": {}, "scenario": {}, "transitions": {}})
            for part in ("baseline", "scenario", "transitions"):
                for key, n in row[part].items():
                    _bump(into[part], key, n)
        for side in ("baseline", "scenario"):
            total["points"][side] += partial["points"][side]
            for key, n in partial["benefits"][side].items():
                _bump(total["benefits"][side], key, n)
        for key, (b, s) in partial["hits"].items():
            hits = total["hits"].setdefault(key, [0, 0])
            hits[0] += b
            hits[1] += s
    return total


def in_rank_order(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored result with each tier type's counts keyed in rank order again: PostgreSQL stores JSON
    as jsonb, which keeps keys sorted by length then bytes, so ``render``'s order comes back lost. Each
    tier type carries its codes in rank order under ``tiers`` for this."""
    if not result:
        return result
    types = []
    for row in result.get("tier_types", []):
        order = row.get("tiers") or list(row["baseline"])
        types.append(
            {
                **row,
                "tiers": order,
                "baseline": {code: row["baseline"].get(code, 0) for code in order},
                "scenario": {code: row["scenario"].get(code, 0) for code in order},
            }
        )
    return {**result, "tier_types": types}


def render(run: SimulationRun, total: Mapping[str, Any], baseline: Program, scenario: Program) -> dict[str, Any]:
    """The merged partials as API.md shapes the result: codes, not ids; every tier of a type listed
    (zeros included), in rank order."""
    tier_types = [t for t in baseline.tier_types if run.tier_type_id is None or t.id == run.tier_type_id]
    out_types = []
    for spec in tier_types:
        row = total["tiers"].get(str(spec.id), {"baseline": {}, "scenario": {}, "transitions": {}})
        ranked = spec.by_rank()
        out_types.append(
            {
                "tier_type": spec.code,
                "tiers": [t.code for t in ranked],
                "baseline": {t.code: row["baseline"].get(str(t.id), 0) for t in ranked},
                "scenario": {t.code: row["scenario"].get(str(t.id), 0) for t in ranked},
                "transitions": [
                    {"from": _code(spec, b), "to": _code(spec, s), "members": n}
                    for key, n in sorted(row["transitions"].items(), key=lambda item: (-item[1], item[0]))
                    for b, s in [key.split(">")]
                ],
            }
        )
    delta = total["points"]["scenario"] - total["points"]["baseline"]
    benefit_codes = {b.id: b.code for b in baseline.benefits.values()}
    granted: Counter[str] = Counter()
    for key, n in total["benefits"]["scenario"].items():
        granted[benefit_codes.get(int(key), key)] += n
    for key, n in total["benefits"]["baseline"].items():
        granted[benefit_codes.get(int(key), key)] -= n
    rule_codes = {
        **{f"points:{r.id}": r.code for p in (baseline, scenario) for r in p.point_rules},
        **{f"{r.direction}:{r.id}": r.code for p in (baseline, scenario) for t in p.tier_types for r in t.rules},
    }
    return {
        "members": total["members"],
        "events": total["events"],
        "tier_types": out_types,
        "points": {
            "baseline": total["points"]["baseline"],
            "scenario": total["points"]["scenario"],
            "delta": delta,
            "liability_delta": str((Decimal(delta) * baseline.point_value).quantize(Decimal("0.01"))),
        },
        "benefits": {"granted_delta": {code: n for code, n in sorted(granted.items()) if n}},
        "rules": [
            {
                "rule": rule_codes.get(key, key),
                "kind": key.split(":")[0],
                "baseline_hits": b,
                "scenario_hits": s,
            }
            for key, (b, s) in sorted(total["hits"].items())
        ],
    }


def _code(spec: Any, tier_id: str) -> str | None:
    tier = spec.tier(int(tier_id)) if tier_id not in ("None", "") else None
    return tier.code if tier else None


def finish_chunk(chunk: SimulationChunk, partial: dict[str, Any], affected: list[AffectedMember]) -> SimulationRun:
    """Store a chunk's outcome and advance the run; the last chunk merges the result. One transaction,
    the run row locked, so parallel chunks count once each and a cancelled run stays cancelled."""
    with transaction.atomic():
        run = SimulationRun.objects.select_for_update().select_related("tenant").get(pk=chunk.run_id)
        fresh = SimulationChunk.objects.select_for_update().get(pk=chunk.pk)
        if run.status != SimulationRun.Status.RUNNING or fresh.done:
            return run
        SimulationChunk.objects.filter(pk=chunk.pk).update(done=True, partial=partial)
        AffectedMember.objects.bulk_create(affected, batch_size=1000)
        SimulationRun.objects.filter(pk=run.pk).update(
            chunks_done=F("chunks_done") + 1,
            members_done=F("members_done") + partial["members"],
            events=F("events") + partial["events"],
        )
        run.refresh_from_db()
        if run.chunks_done >= run.chunks_total:
            partials = [c.partial for c in SimulationChunk.objects.filter(run=run).only("partial") if c.partial]
            run.result = render(run, merge(partials), program(run.tenant), program(run.tenant, run.scenario))
            run.status = SimulationRun.Status.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["result", "status", "finished_at"])
        return run


def fail(run_id: int, error: BaseException) -> None:
    SimulationRun.objects.filter(
        pk=run_id, status__in=[SimulationRun.Status.QUEUED, SimulationRun.Status.RUNNING]
    ).update(
        status=SimulationRun.Status.FAILED, error=f"{type(error).__name__}: {error}"[:2000], finished_at=timezone.now()
    )


def cancel(*, tenant: Tenant, run: SimulationRun) -> SimulationRun:
    """Stop a queued or running simulation (chunks still queued find it cancelled and do nothing);
    a finished one → 409 ``run_finished``."""
    with transaction.atomic():
        run = SimulationRun.objects.select_for_update().get(pk=run.pk, tenant=tenant)
        if run.status in SimulationRun.FINISHED:
            raise RunFinished()
        run.status = SimulationRun.Status.CANCELLED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
    return run

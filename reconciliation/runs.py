"""Reconciliation runs (DOMAIN §10, API.md "Wave 2 contract"): recompute each member's expected points
per event, tiers and tier benefits from the event log and the configuration in force with the replay
kernel (``simulation.kernel.replay``, the engines live evaluation runs), compare with what is stored
(``reconciliation.checks``), find failed syncs and stuck outbox rows, record one discrepancy per finding,
and with ``fix`` repair each as an ordinary audited, emitted operation.

How a run proceeds (choices where DOMAIN.md is silent):

- **Chunks, in parallel, resumable.** Members in ``pk`` order, ``RECONCILIATION_CHUNK_SIZE`` at a time
  (``plan``), one task per chunk so more workers finish sooner; each chunk is read in bulk (a constant
  number of queries) and committed with its ``done`` flag: a redelivered task of a finished chunk does
  nothing, and a run whose worker died carries on with the chunks left, recording nothing twice. The
  last chunk to finish runs the sync and outbox checks and ends the run.
- **Found twice before reported.** A member the bulk pass finds wrong is locked and checked again from
  fresh reads in the chunk's transaction, so an event arriving mid-run is never reported as drift, and a
  repair never races the member's events.
- **Repairs**: a wrong tier → a tier change with source ``reconciliation`` to the replayed tier, with the
  replay's engine state, then the benefits re-synced; wrong points → an ``adjustment`` of the difference
  on the event; a missing or extra tier benefit → the live benefit sync; a dead IAM or Point Service
  delivery or a delivery stuck past its schedule → retried; a message stuck unfanned → requeued.
- **One run per tenant at a time** (409 ``reconciliation_running``); the nightly beat entry skips a
  tenant whose run is still going.
- **Erased members** are checked and reported like any other, never repaired: their tiers and grants
  no longer move (``member_erased`` everywhere else).
"""

from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import describe_actor, record_audit
from benefits.grants import sync_tier_benefits
from config.errors import Conflict, Invalid
from members.models import Member, MemberEvent
from outbox.models import Delivery, OutboxMessage
from outbox.services import requeue_messages, retry_deliveries
from points.services import EventAdjustment, record_event_adjustments
from reconciliation.checks import Finding, benefit_findings, point_findings, tier_findings
from reconciliation.live import BenefitFacts, StoredState, benefit_facts, stored_state
from reconciliation.models import CHECKS, Discrepancy, ReconciliationChunk, ReconciliationRun
from simulation.config import Program, program
from simulation.kernel import MemberHistory, entitled_benefits, replay
from simulation.loader import histories
from tenancy.models import Tenant
from tiers.assignments import apply_tier_change, held_until_now
from tiers.models import AssignmentSource, MemberTierAssignment, Tier

MEMBER_CHECKS = frozenset({"points", "tiers", "benefits"})
SYNC_DESTINATIONS = (Delivery.Destination.IAM, Delivery.Destination.POINT_SERVICE)
ACTOR = "system:reconciliation"
MAX_MEMBERS = 1000


class ReconciliationRunning(Conflict):
    code = "reconciliation_running"
    default_detail = "A reconciliation of this program is already queued or running."


class RunFinished(Conflict):
    code = "run_finished"
    default_detail = "This run has finished; only a queued or running run can be cancelled."


# --- starting and cancelling ----------------------------------------------------------------------
def create_run(
    *, tenant: Tenant, fix: bool, checks: list[str] | None, member_ids: list[str] | None, actor: Any
) -> ReconciliationRun:
    """Record a queued run, dry unless ``fix``, of ``checks`` (None: all) over ``member_ids`` (None: every
    member); ``reconciliation.tasks.queue_run`` hands it to a worker. Unknown checks or members are a
    422 naming them; nothing is stored."""
    checks = list(dict.fromkeys(checks if checks is not None else CHECKS))
    errors: dict[str, list[str]] = {}
    unknown = [c for c in checks if c not in CHECKS]
    if unknown or not checks:
        errors["checks"] = [f"Choose among {', '.join(CHECKS)}; unknown: {', '.join(unknown) or 'none given'}."]
    if member_ids is not None:
        member_ids = list(dict.fromkeys(member_ids))
        found = set(
            Member.objects.filter(tenant=tenant, external_id__in=member_ids).values_list("external_id", flat=True)
        )
        missing = [m for m in member_ids if m not in found]
        if not member_ids or len(member_ids) > MAX_MEMBERS:
            errors["members"] = [f"Name 1 to {MAX_MEMBERS} members, or null for all."]
        elif missing:
            errors["members"] = [f"No member {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}."]
    if errors:
        raise Invalid(errors=errors)
    members = Member.objects.filter(tenant=tenant)
    if member_ids is not None:
        members = members.filter(external_id__in=member_ids)
    try:
        with transaction.atomic():
            run = ReconciliationRun.objects.create(
                tenant=tenant,
                fix=fix,
                checks=checks,
                member_ids=member_ids,
                members_total=members.count() if MEMBER_CHECKS & set(checks) else 0,
                requested_by=describe_actor(actor),
            )
            record_audit(
                tenant=tenant,
                actor=actor,
                action="reconciliation.started",
                target=run,
                after={"fix": fix, "checks": checks, "members": member_ids},
            )
    except IntegrityError:
        raise ReconciliationRunning() from None
    return run


@transaction.atomic
def cancel_run(*, tenant: Tenant, run: ReconciliationRun, actor: Any) -> ReconciliationRun:
    """Stop a queued or running run after its current chunk (what it found and fixed so far stays)."""
    run = ReconciliationRun.objects.select_for_update().get(pk=run.pk, tenant=tenant)
    if run.status not in ReconciliationRun.ACTIVE:
        raise RunFinished()
    run.status, run.finished_at = ReconciliationRun.Status.CANCELLED, timezone.now()
    run.save(update_fields=["status", "finished_at"])
    record_audit(tenant=tenant, actor=actor, action="reconciliation.cancelled", target=run)
    return run


def nightly_runs() -> list[ReconciliationRun]:
    """The beat entry's runs: a dry run of every check for each tenant with members and no run going."""
    runs = []
    for tenant in Tenant.objects.filter(pk__in=Member.objects.values("tenant_id")).order_by("pk"):
        try:
            runs.append(create_run(tenant=tenant, fix=False, checks=None, member_ids=None, actor=ACTOR))
        except ReconciliationRunning:
            continue
    return runs


# --- processing -----------------------------------------------------------------------------------
def plan(run_id: int) -> list[ReconciliationChunk]:
    """Cut a queued run into chunks of ``RECONCILIATION_CHUNK_SIZE`` members (keyset over member pks)
    and mark it running; returns the chunks still to do (all of a running run's that are not done, so a
    resumed run carries on). A run with no member to check goes straight to the deliveries and ends."""
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().select_related("tenant").get(pk=run_id)
        if run.status == ReconciliationRun.Status.RUNNING:
            return list(run.chunks.filter(done=False).order_by("first_member"))
        if run.status != ReconciliationRun.Status.QUEUED:
            return []
        made = ReconciliationChunk.objects.bulk_create(
            ReconciliationChunk(tenant_id=run.tenant_id, run=run, first_member=first, last_member=last, members=n)
            for first, last, n in _member_ranges(run)
        )
        run.status, run.started_at, run.chunks_total = ReconciliationRun.Status.RUNNING, timezone.now(), len(made)
        run.members_total = sum(c.members for c in made)
        run.save(update_fields=["status", "started_at", "chunks_total", "members_total"])
    if not made:
        finish(run_id)
    return made


def _member_ranges(run: ReconciliationRun) -> list[tuple[int, int, int]]:
    if not MEMBER_CHECKS & set(run.checks):
        return []
    members = _members(run)
    size, ranges, after = settings.RECONCILIATION_CHUNK_SIZE, [], 0
    while pks := list(members.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:size]):
        ranges.append((pks[0], pks[-1], len(pks)))
        after = pks[-1]
    return ranges


def _members(run: ReconciliationRun) -> QuerySet[Member]:
    members = Member.objects.filter(tenant_id=run.tenant_id)
    return members if run.member_ids is None else members.filter(external_id__in=run.member_ids)


def process_run(run_id: int) -> ReconciliationRun:
    """Run (or resume) a run to its end in this process, chunk after chunk (the tasks spread the chunks
    over workers instead); a finished run is returned untouched."""
    for chunk in plan(run_id):
        reconcile_chunk(chunk.pk)
    return ReconciliationRun.objects.get(pk=run_id)


def reconcile_chunk(chunk_id: int) -> bool:
    """Check (and repair) one chunk of members; the last chunk to finish ends the run. False when the
    chunk was done already or the run is no longer running. A failure marks the run failed."""
    chunk = ReconciliationChunk.objects.select_related("run", "run__tenant").get(pk=chunk_id)
    if chunk.done or chunk.run.status != ReconciliationRun.Status.RUNNING:
        return False
    try:
        last = _reconcile_chunk(chunk)
        if last:
            finish(chunk.run_id)
    except Exception as exc:
        fail(chunk.run_id, exc)
        raise
    return True


def fail(run_id: int, error: BaseException) -> None:
    ReconciliationRun.objects.filter(pk=run_id, status__in=ReconciliationRun.ACTIVE).update(
        status=ReconciliationRun.Status.FAILED,
        error=f"{type(error).__name__}: {error}"[:2000],
        finished_at=timezone.now(),
    )


def finish(run_id: int) -> None:
    """After the last chunk: the sync and outbox checks, then the run is done."""
    _reconcile_deliveries(run_id)
    ReconciliationRun.objects.filter(pk=run_id, status=ReconciliationRun.Status.RUNNING).update(
        status=ReconciliationRun.Status.DONE, finished_at=timezone.now()
    )


def _locked_run(run_id: int) -> ReconciliationRun | None:
    run = ReconciliationRun.objects.select_for_update().select_related("tenant").get(pk=run_id)
    return run if run.status == ReconciliationRun.Status.RUNNING else None


def _reconcile_chunk(chunk: ReconciliationChunk) -> bool:
    """The chunk: the bulk pass outside any transaction (the long part, in parallel with other chunks),
    then one transaction holding the run row (so parallel chunks count once each, and a run cancelled
    meanwhile is left alone) for the suspects, checked again under their locks, repaired, recorded.
    Returns whether it was the run's last chunk."""
    queued, config = chunk.run, program(chunk.run.tenant)
    tenant, checks, facts = queued.tenant, MEMBER_CHECKS & set(queued.checks), benefit_facts(queued.tenant)
    members = _members(queued).filter(pk__gte=chunk.first_member, pk__lte=chunk.last_member)
    pks = list(members.order_by("pk").values_list("pk", flat=True))
    named = queued.member_ids is not None
    suspects = _suspects(tenant, pks, checks, config, facts, timezone.now(), named=named) if pks else []
    with transaction.atomic():
        run = _locked_run(queued.pk)
        fresh = ReconciliationChunk.objects.select_for_update().get(pk=chunk.pk)
        if run is None or fresh.done:
            return False  # cancelled, or a redelivered task of a chunk another worker finished
        rows: list[Discrepancy] = []
        for member in Member.objects.select_for_update(of=("self",)).filter(pk__in=suspects).order_by("pk"):
            history = histories(tenant, member.pk, member.pk)[0]
            stored = stored_state(tenant, [member.pk], checks, _pooled_codes(config))
            findings = _findings(history, stored, checks, config, facts, timezone.now())
            repairable = queued.fix and member.status != Member.Status.ERASED  # an erased member is only reported
            fixed = _repair(tenant, member, history, config, findings) if repairable else set()
            rows += [_row(queued, member.external_id, f, f in fixed) for f in findings]
        Discrepancy.objects.bulk_create(rows)
        _count(run, rows)
        run.members_done, run.chunks_done = run.members_done + len(pks), run.chunks_done + 1
        run.save(update_fields=["members_done", "chunks_done", "counts", "fixed"])
        ReconciliationChunk.objects.filter(pk=chunk.pk).update(done=True)
        return run.chunks_done >= run.chunks_total


def _pooled_codes(config: Program) -> frozenset[str]:
    return frozenset(m.code for m in config.modifiers if m.campaign_total is not None)


def _suspects(
    tenant: Tenant,
    pks: list[int],
    checks: frozenset[str],
    config: Program,
    facts: BenefitFacts,
    now: datetime,
    *,
    named: bool,
) -> list[int]:
    """The members of the chunk the bulk pass finds anything wrong with. Named members may lie far
    apart: their histories are read one by one rather than over the whole pk range between them."""
    stored = stored_state(tenant, pks, checks, _pooled_codes(config))
    read = [h for pk in pks for h in histories(tenant, pk, pk)] if named else histories(tenant, pks[0], pks[-1])
    return [h.pk for h in read if _findings(h, stored, checks, config, facts, now)]


def _findings(
    history: MemberHistory,
    stored: StoredState,
    checks: frozenset[str],
    config: Program,
    facts: BenefitFacts,
    now: datetime,
) -> list[Finding]:
    outcome, _ = replay(history, config)
    pk, found = history.pk, []
    if "points" in checks:
        names = {**stored.names, **{e.pk: e.event_id for e in history.events}}
        found += point_findings(
            expected=outcome.event_points,
            actual=stored.points[pk],
            operator=stored.operator[pk],
            names=names,
            unchecked=stored.pooled[pk],
        )
    tier_codes = {t.id: t.code for spec in config.tier_types for t in spec.tiers}
    if "tiers" in checks:
        type_codes = {spec.id: spec.code for spec in config.tier_types}
        found += tier_findings(
            expected=outcome.tiers, actual=stored.tiers[pk], tier_codes=tier_codes, type_codes=type_codes
        )
    if "benefits" in checks and outcome.metrics is not None and outcome.member is not None:
        entitled = entitled_benefits(config, outcome.tiers, outcome.metrics, outcome.member, now)
        found += benefit_findings(
            entitled=entitled,
            active=stored.active[pk],
            closed=stored.closed[pk],
            exhausted=facts.exhausted,
            kept_on_loss=facts.kept_on_loss,
            codes={b: spec.code for b, spec in config.benefits.items()},
        )
    return found


def _repair(
    tenant: Tenant, member: Member, history: MemberHistory, config: Program, findings: list[Finding]
) -> set[Finding]:
    """Repair one locked member's findings; returns those repaired."""
    outcome, _ = replay(history, config)
    now, fixed = timezone.now(), set()
    for finding in (f for f in findings if f.kind == "tiers"):
        tier_type_id, tier_id = finding.ref
        snapshot = outcome.assignments[tier_type_id]
        tier = Tier.objects.select_related("tier_type").get(pk=tier_id)
        spec = config.tier_type(tier_type_id)
        apply_tier_change(
            tenant=tenant,
            member=member,
            tier_type=tier.tier_type,
            to_tier=tier,
            source=AssignmentSource.RECONCILIATION,
            actor=ACTOR,
            reason=f"reconciliation: the event log and tier history give {tier.name}, not {finding.actual or 'none'}",
            valid_until=held_until_now(tenant=tenant, member=member, spec=spec, after=snapshot, at=now)
            if spec
            else None,
            lock_until=snapshot.lock_until,
            expires_at=snapshot.expires_at,
            now=now,
        )
        MemberTierAssignment.objects.filter(member=member, tier_type_id=tier_type_id).update(
            granted_claims=[c.as_dict() for c in snapshot.granted],
            claims_void_before=snapshot.claims_void_before,
            last_rule_demotion_at=snapshot.last_rule_demotion_at,
        )
        fixed.add(finding)
    wrong_points = [f for f in findings if f.kind == "points"]
    if wrong_points:
        events = MemberEvent.objects.in_bulk([f.ref for f in wrong_points])
        record_event_adjustments(
            tenant=tenant,
            member=member,
            adjustments=[EventAdjustment(events[f.ref], None, f.expected - f.actual, f.expected) for f in wrong_points],
            actor=ACTOR,
            action="reconciliation.points_repaired",
            reason="reconciliation: the ledger differed from the event log replayed under the rules in force",
        )
        fixed.update(wrong_points)
    if any(f.kind in ("tiers", "benefits") for f in findings):
        sync_tier_benefits(tenant=tenant, member=member, actor=ACTOR, now=now)
        fixed.update(f for f in findings if f.kind == "benefits")
    return fixed


def _reconcile_deliveries(run_id: int) -> None:
    """The sync and outbox checks (tenant-wide, or the run's members' messages), in one transaction."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if run is None or not {"sync", "outbox"} & set(run.checks):
            return
        tenant, stuck_before = run.tenant, timezone.now() - timedelta(seconds=settings.RECONCILIATION_STUCK_AFTER)
        deliveries = Delivery.objects.filter(tenant=tenant).select_related("message")
        messages = OutboxMessage.objects.filter(tenant=tenant)
        if run.member_ids is not None:
            deliveries = deliveries.filter(message__member_id__in=run.member_ids)
            messages = messages.filter(member_id__in=run.member_ids)
        found: list[tuple[str, Finding, Any]] = []
        if "sync" in run.checks:
            for d in deliveries.filter(destination__in=SYNC_DESTINATIONS, status=Delivery.Status.DEAD).order_by("pk"):
                subject = f"{d.get_destination_display()} delivery of {d.message.type}"
                found.append((d.message.member_id, Finding("sync", "sync_failed", subject, "delivered", "dead"), d))
        if "outbox" in run.checks:
            late = deliveries.filter(status=Delivery.Status.PENDING, next_attempt_at__lt=stuck_before)
            for d in late.order_by("pk"):
                subject = f"{d.get_destination_display()} delivery of {d.message.type}"
                stuck = Finding("outbox", "outbox_stuck", subject, _due(stuck_before), _iso(d.next_attempt_at))
                found.append((d.message.member_id, stuck, d))
            late_messages = messages.filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lt=stuck_before)
            for m in late_messages.order_by("created_at", "sequence"):
                stuck = Finding(
                    "outbox", "outbox_stuck", f"message {m.type}", _due(stuck_before), _iso(m.next_attempt_at)
                )
                found.append((m.member_id, stuck, m))
        if run.fix:
            retry_deliveries(tenant=tenant, deliveries=[o for _, _, o in found if isinstance(o, Delivery)], actor=ACTOR)
            requeue_messages(
                tenant=tenant, messages=[o for _, _, o in found if isinstance(o, OutboxMessage)], actor=ACTOR
            )
        rows = [_row(run, member_id, f, run.fix) for member_id, f, _ in found]
        Discrepancy.objects.bulk_create(rows)
        _count(run, rows)
        run.save(update_fields=["counts", "fixed"])


def _due(before: datetime) -> str:
    return f"attempted by {_iso(before)}"


def _iso(value: datetime) -> str:
    return value.astimezone(ZoneInfo("UTC")).isoformat()


def _row(run: ReconciliationRun, member_id: str, finding: Finding, fixed: bool) -> Discrepancy:
    return Discrepancy(
        tenant=run.tenant,
        run=run,
        member_id=member_id,
        kind=finding.kind,
        code=finding.code,
        subject=finding.subject,
        expected=finding.expected,
        actual=finding.actual,
        fixed=fixed,
    )


def _count(run: ReconciliationRun, rows: list[Discrepancy]) -> None:
    counts, fixed = Counter(run.counts), Counter(run.fixed)
    for check in run.checks:
        counts.setdefault(check, 0)
        fixed.setdefault(check, 0)
    counts.update(r.kind for r in rows)
    fixed.update(r.kind for r in rows if r.fixed)
    run.counts, run.fixed = dict(counts), dict(fixed)

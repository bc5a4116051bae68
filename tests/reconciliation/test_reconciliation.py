"""Reconciliation (``/reconciliation/run``): drift injected directly in the database is reported exactly,
kind by kind, and nothing else; ``fix`` repairs it with ordinary operations, after which a second run
finds nothing; a clean program reports zero."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from benefits.grants import sync_tier_benefits
from benefits.models import Benefit, MemberBenefit
from members.models import Member
from outbox.models import Delivery, OutboxMessage
from points.models import PointTransaction
from reconciliation import runs
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.runs import create_run, process_run
from tests.factories import BenefitFactory, MemberFactory, TierBenefitMappingFactory
from tests.helpers import assert_problem
from tests.simulation.program import build_program, populate
from tiers.models import MemberTierAssignment, MemberTierChange, Tier

pytestmark = pytest.mark.django_db
URL = "/api/v1/reconciliation/run"
KINDS = ("points", "tiers", "benefits", "sync", "outbox")


@pytest.fixture
def program(tenant):
    """The generated two-ladder program with tier benefits (breakfast for every hotel member, the lounge
    for Gold) and 30 members with their events."""
    made = build_program(tenant)
    tiers = {t.code: t for t in made["tiers"].filter(tier_type=made["hotel"])}
    TierBenefitMappingFactory(tier=tiers["member"], benefit=BenefitFactory(tenant=tenant, code="breakfast"))
    TierBenefitMappingFactory(tier=tiers["gold"], benefit=BenefitFactory(tenant=tenant, code="lounge"))
    populate(tenant, made, members=30, seed=5)
    for member in Member.objects.filter(tenant=tenant):  # grants for members registered before the mapping
        with transaction.atomic():
            sync_tier_benefits(tenant=tenant, member=member, actor="test")
    return made


def run_now(tenant, **kwargs) -> ReconciliationRun:
    run = create_run(tenant=tenant, fix=kwargs.pop("fix", False), checks=None, member_ids=None, actor="test")
    return process_run(run.pk)


def found(run) -> Counter:
    return Counter((d.kind, d.code) for d in Discrepancy.objects.filter(run=run))


def test_a_clean_program_reports_nothing(tenant, program):
    run = run_now(tenant)
    assert (run.status, run.members_done, run.members_total) == ("done", 30, 30)
    assert run.counts == dict.fromkeys(KINDS, 0)
    assert run.fixed == dict.fromkeys(KINDS, 0)
    assert not Discrepancy.objects.exists()


def inject_drift(tenant, n: int = 3) -> dict[str, list]:
    """Corrupt ``n`` rows of each kind behind the engine's back."""
    earns = list(
        {t.event_id: t for t in PointTransaction.objects.filter(tenant=tenant, kind="earn", points__gt=0)}.values()
    )[:n]  # one per event: a finding is per event
    PointTransaction.objects.filter(pk__in=[t.pk for t in earns]).update(points=F("points") + 7)
    hotel_rows = MemberTierAssignment.objects.filter(tenant=tenant, tier_type__code="hotel", tier__code="member")
    wrong_tier = list(hotel_rows.order_by("-member_id")[:n])
    silver = Tier.objects.get(tier_type__tenant=tenant, tier_type__code="hotel", code="silver")
    MemberTierAssignment.objects.filter(pk__in=[a.pk for a in wrong_tier]).update(tier=silver)
    untouched = MemberBenefit.objects.filter(tenant=tenant, benefit__code="breakfast", status="active").exclude(
        member_id__in=[a.member_id for a in wrong_tier]
    )
    missing = list(untouched.order_by("pk")[:n])
    MemberBenefit.objects.filter(pk__in=[g.pk for g in missing]).delete()
    lounge = Benefit.objects.get(tenant=tenant, code="lounge")
    not_gold = MemberTierAssignment.objects.filter(tenant=tenant, tier_type__code="hotel", tier__code="member")
    extra = [
        MemberBenefit.objects.create(
            tenant=tenant,
            member_id=a.member_id,
            benefit=lounge,
            source="tier",
            source_ref="hotel:gold",
            granted_at=timezone.now(),
        )
        for a in not_gold.exclude(member_id__in=[g.member_id for g in missing]).order_by("member_id")[:n]
    ]
    messages = list(OutboxMessage.objects.filter(tenant=tenant, type="tier.changed").order_by("created_at")[: 2 * n])
    dead = [
        Delivery.objects.create(tenant=tenant, message=m, destination="iam", status="dead", attempts=19)
        for m in messages[:n]
    ]
    long_ago = timezone.now() - timedelta(hours=2)
    stuck = messages[n:]
    OutboxMessage.objects.filter(pk__in=[m.pk for m in stuck]).update(status="pending", next_attempt_at=long_ago)
    return {"points": earns, "tiers": wrong_tier, "missing": missing, "extra": extra, "dead": dead, "stuck": stuck}


def test_injected_drift_is_reported_exactly_and_fixed_for_good(tenant, program, eager_tasks):
    drift = inject_drift(tenant)
    dry = run_now(tenant)
    assert found(dry) == {
        ("points", "points_mismatch"): 3,
        ("tiers", "tier_mismatch"): 3,
        ("benefits", "benefit_missing"): 3,
        ("benefits", "benefit_extra"): 3,
        ("sync", "sync_failed"): 3,
        ("outbox", "outbox_stuck"): 3,
    }
    assert dry.counts == {"points": 3, "tiers": 3, "benefits": 6, "sync": 3, "outbox": 3}
    assert dry.fixed == dict.fromkeys(KINDS, 0)
    points = Discrepancy.objects.filter(run=dry, kind="points").order_by("id")
    expected = {(t.member.external_id, t.event.event_id, 7) for t in drift["points"]}
    assert {(d.member_id, d.subject, d.actual - d.expected) for d in points} == expected  # per event, net
    tiers = Discrepancy.objects.filter(run=dry, kind="tiers")
    assert {(d.member_id, d.subject, d.expected, d.actual) for d in tiers} == {
        (a.member.external_id, "hotel", "member", "silver") for a in drift["tiers"]
    }
    # the dry run changed nothing
    assert not MemberTierChange.objects.filter(tenant=tenant, source="reconciliation").exists()

    adjustments_before = PointTransaction.objects.filter(tenant=tenant, kind="adjustment").count()
    repaired = run_now(tenant, fix=True)
    assert repaired.counts == {"points": 3, "tiers": 3, "benefits": 6, "sync": 3, "outbox": 3}
    assert repaired.fixed == repaired.counts
    assert PointTransaction.objects.filter(tenant=tenant, kind="adjustment").count() == adjustments_before + 3
    for tx in drift["points"]:
        assert PointTransaction.objects.get(tenant=tenant, kind="adjustment", event=tx.event).points == -7
    adjusted = OutboxMessage.objects.filter(tenant=tenant, type="points.adjusted")
    announced = {(m.member_id, t["event_id"], t["points"]) for m in adjusted for t in m.data["transactions"]}
    assert announced == {(t.member.external_id, t.event.event_id, -7) for t in drift["points"]}
    changes = MemberTierChange.objects.filter(tenant=tenant, source="reconciliation")
    assert sorted(changes.values_list("member_id", "from_tier__code", "to_tier__code")) == sorted(
        (a.member_id, "silver", "member") for a in drift["tiers"]
    )
    repairs = OutboxMessage.objects.filter(tenant=tenant, type="tier.changed", data__source="reconciliation")
    assert repairs.count() == 3
    for grant in drift["extra"]:
        grant.refresh_from_db()
        assert grant.status == "revoked"
    for grant in drift["missing"]:
        assert MemberBenefit.objects.filter(member_id=grant.member_id, benefit__code="breakfast", status="active")
    for delivery in drift["dead"]:
        delivery.refresh_from_db()
        assert delivery.status != "dead" or delivery.attempts < 19  # retried (fresh attempts)

    again = run_now(tenant)
    assert again.counts == dict.fromkeys(KINDS, 0), found(again)


def test_one_run_per_tenant_at_a_time_and_a_run_resumes_where_it_stopped(tenant, program, settings, monkeypatch):
    inject_drift(tenant, n=2)
    settings.RECONCILIATION_CHUNK_SIZE = 7
    run = create_run(tenant=tenant, fix=False, checks=["points", "tiers"], member_ids=None, actor="test")
    with pytest.raises(runs.ReconciliationRunning):
        create_run(tenant=tenant, fix=False, checks=None, member_ids=None, actor="test")
    real, calls = runs.reconcile_chunk, []

    class WorkerLost(BaseException):
        pass

    def dies_on_the_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise WorkerLost()
        return real(*args)

    monkeypatch.setattr(runs, "reconcile_chunk", dies_on_the_third)
    with pytest.raises(WorkerLost):
        process_run(run.pk)
    run.refresh_from_db()
    assert (run.status, run.members_done, run.chunks_done, run.chunks_total) == ("running", 14, 2, 5)
    monkeypatch.setattr(runs, "reconcile_chunk", real)
    run = process_run(run.pk)
    assert (run.status, run.members_done) == ("done", 30)
    assert found(run) == {("points", "points_mismatch"): 2, ("tiers", "tier_mismatch"): 2}
    assert process_run(run.pk).counts == run.counts  # a finished run is left alone
    assert runs.reconcile_chunk(run.chunks.first().pk) is False  # a redelivered chunk task does nothing
    assert Discrepancy.objects.filter(run=run).count() == 4


def test_a_cancelled_run_checks_no_further_chunk(tenant, program, settings):
    inject_drift(tenant, n=2)
    settings.RECONCILIATION_CHUNK_SIZE = 10
    run = create_run(tenant=tenant, fix=True, checks=None, member_ids=None, actor="test")
    chunks = runs.plan(run.pk)
    assert [c.members for c in chunks] == [10, 10, 10]
    assert runs.reconcile_chunk(chunks[0].pk) is True
    runs.cancel_run(tenant=tenant, run=run, actor="test")
    assert [runs.reconcile_chunk(c.pk) for c in chunks[1:]] == [False, False]
    run.refresh_from_db()
    assert (run.status, run.members_done, run.chunks_done) == ("cancelled", 10, 1)
    with pytest.raises(runs.RunFinished):
        runs.cancel_run(tenant=tenant, run=run, actor="test")


def test_the_api_runs_polls_lists_and_refuses_bad_input(
    api, tenant, program, other_tenant, api_client_for, eager_tasks, django_capture_on_commit_callbacks
):
    inject_drift(tenant, n=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(URL, {"checks": ["tiers", "points"], "members": None}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["url"] == f"{URL}/{body['id']}"
    run = api.get(body["url"]).json()
    assert {k: run[k] for k in ("status", "fix", "checks", "members", "progress", "counts", "fixed", "error")} == {
        "status": "done",
        "fix": False,
        "checks": ["tiers", "points"],
        "members": None,
        "progress": {"done": 30, "total": 30},
        "counts": {"tiers": 1, "points": 1},
        "fixed": {"tiers": 0, "points": 0},
        "error": None,
    }
    listed = api.get(f"{body['url']}/discrepancies", {"kind": "tiers"}).json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert (row["kind"], row["code"], row["subject"], row["expected"], row["actual"], row["fixed"]) == (
        "tiers",
        "tier_mismatch",
        "hotel",
        "member",
        "silver",
        False,
    )
    assert_problem(api.post(f"{body['url']}/cancel"), 409, "run_finished")
    # named members only
    with django_capture_on_commit_callbacks(execute=True):
        named = api.post(URL, {"members": [row["member_id"]]}, format="json").json()
    assert api.get(named["url"]).json()["progress"] == {"done": 1, "total": 1}
    runs_before = ReconciliationRun.objects.count()
    assert_problem(api.post(URL, {"checks": ["points", "karma"]}, format="json"), 422, "validation_error")
    bad = assert_problem(
        api.post(URL, {"members": ["nobody", row["member_id"]]}, format="json"), 422, "validation_error"
    )
    assert bad["errors"] == {"members": ["No member nobody."]}
    assert_problem(api.post(URL, {"members": []}, format="json"), 422, "validation_error")
    assert_problem(api.post(URL, {"fix": "maybe"}, format="json"), 422, "validation_error")
    assert_problem(api.post(URL, [1], format="json"), 422, "validation_error")
    MemberFactory(tenant=other_tenant, external_id="theirs")
    assert_problem(api.post(URL, {"members": ["theirs"]}, format="json"), 422, "validation_error")
    assert ReconciliationRun.objects.count() == runs_before
    # another tenant, no token, a small scope
    other = api_client_for(other_tenant)
    assert_problem(other.get(body["url"]), 404, "not_found")
    assert_problem(other.get(f"{body['url']}/discrepancies"), 404, "not_found")
    assert_problem(other.post(f"{body['url']}/cancel"), 404, "not_found")
    assert_problem(APIClient().post(URL, {}, format="json"), 401, "not_authenticated")
    assert_problem(APIClient().get(body["url"]), 401, "not_authenticated")
    writer = api_client_for(tenant, "privilege:read privilege:write")
    assert_problem(writer.post(URL, {}, format="json"), 403, "insufficient_scope")
    assert_problem(writer.get(body["url"]), 403, "insufficient_scope")
    assert ReconciliationRun.objects.count() == runs_before


def test_a_tenant_with_no_members_is_done_with_zeros(other_tenant):
    run = run_now(other_tenant)
    assert (run.status, run.members_total, run.counts) == ("done", 0, dict.fromkeys(KINDS, 0))


def test_an_erased_members_drift_is_reported_but_not_repaired(tenant, program):
    from events.erasure import erase_member

    drift = inject_drift(tenant, n=1)
    member = drift["tiers"][0].member
    erase_member(tenant=tenant, member=member, reason="request", actor="test")
    run = run_now(tenant, fix=True)
    row = Discrepancy.objects.get(run=run, kind="tiers")
    assert (row.member_id, row.code, row.fixed) == (member.external_id, "tier_mismatch", False)
    assert run.fixed["tiers"] == 0
    assert MemberTierAssignment.objects.get(member=member, tier_type__code="hotel").tier.code == "silver"
    assert not MemberTierChange.objects.filter(member=member, source="reconciliation").exists()

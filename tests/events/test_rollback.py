"""Rollback (``/member/{id}/rollback/tier|points|benefit|history``): undo a tier change, reverse a point
transaction, revoke a benefit grant; each idempotent, audited, emitted, refused with its own code."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from benefits.models import MemberBenefit
from members.models import Member
from outbox.models import OutboxMessage
from points.models import PointTransaction
from tests.factories import (
    BenefitFactory,
    MemberFactory,
    PointConversionRuleFactory,
    TierBenefitMappingFactory,
    hotel_ladder,
)
from tests.helpers import assert_problem, stay
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db

TIER = "/api/v1/member/ann/rollback/tier"
POINTS = "/api/v1/member/ann/rollback/points"
BENEFIT = "/api/v1/member/ann/rollback/benefit"
HISTORY = "/api/v1/member/ann/rollback/history"


@pytest.fixture
def lounge(tenant, ladder):
    return TierBenefitMappingFactory(tier=ladder[1]["gold"], benefit=BenefitFactory(tenant=tenant, code="lounge"))


def move(api, tier: str, reason: str = "goodwill") -> None:
    response = api.put("/api/v1/member/ann/tier", {"tier_type": "hotel", "tier": tier, "reason": reason}, format="json")
    assert response.status_code == 200, response.content


def held(member) -> tuple[str, str, list]:
    assignment = MemberTierAssignment.objects.select_related("tier").get(member=member)
    return assignment.tier.code, assignment.source, [(c["tier_id"], c["source"]) for c in assignment.granted_claims]


def lounge_status(member) -> list[str]:
    return list(
        MemberBenefit.objects.filter(member=member, benefit__code="lounge")
        .order_by("pk")
        .values_list("status", flat=True)
    )


def test_undoing_a_manual_promotion_restores_the_tier_and_its_benefits(api, ann, ladder, lounge):
    move(api, "gold")
    assert lounge_status(ann) == ["active"]
    promotion = MemberTierChange.objects.filter(member=ann).first()
    response = api.post(TIER, {"tier_type": "hotel", "reason": "promoted the wrong member"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    change = MemberTierChange.objects.filter(member=ann).first()
    assert {k: body[k] for k in ("change", "rolled_back", "tier_type", "from", "to")} == {
        "change": change.pk,
        "rolled_back": promotion.pk,
        "tier_type": "hotel",
        "from": "gold",
        "to": "member",
    }
    assert [(t["tier_type"], t["tier"]) for t in body["tiers"]] == [("hotel", "member")]
    assert (change.source, change.reverts_id, change.reason) == ("rollback", promotion.pk, "promoted the wrong member")
    assert held(ann) == ("member", "rollback", [])  # the manual claim on gold is gone
    assert lounge_status(ann) == ["revoked"]
    message = OutboxMessage.objects.filter(type="tier.changed").latest("sequence")
    assert (message.member_id, message.data["from"], message.data["to"], message.data["source"]) == (
        "ann",
        "gold",
        "member",
        "rollback",
    )
    entry = AuditEntry.objects.get(action="tier.rolled_back")
    assert (entry.target_type, entry.target_id, entry.member_id, entry.reason, entry.before, entry.after) == (
        "tiers.membertierchange",
        str(promotion.pk),
        "ann",
        "promoted the wrong member",
        {"tier_type": "hotel", "tier": "gold"},
        {"tier_type": "hotel", "tier": "member", "change": change.pk},
    )
    # the next evaluation does not bring gold back: the activity never earned it
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    assert held(ann)[0] == "member"


def test_undoing_a_demotion_gives_the_tier_back_so_the_next_event_keeps_it(api, ann, ladder, lounge):
    move(api, "gold")
    move(api, "silver", "downgrade")
    response = api.post(TIER, {"tier_type": "hotel", "change": None, "reason": "downgrade by mistake"}, format="json")
    assert (response.status_code, response.json()["to"]) == (200, "gold")
    assert held(ann) == ("gold", "rollback", [(ladder[1]["gold"].pk, "manual")])
    assert lounge_status(ann) == ["revoked", "active"]  # lost with gold, granted again with it
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    assert held(ann)[0] == "gold"


def test_returning_to_the_state_before_an_older_change_and_the_refusals(api, ann, ladder):
    enrolment = MemberTierChange.objects.get(member=ann)  # from no tier to member
    move(api, "silver")
    to_silver = MemberTierChange.objects.filter(member=ann).first()
    move(api, "gold")
    response = api.post(TIER, {"tier_type": "hotel", "change": to_silver.pk, "reason": "both wrong"}, format="json")
    assert (response.status_code, response.json()["from"], response.json()["to"]) == (200, "gold", "member")
    stored = MemberTierChange.objects.count()
    again = {"tier_type": "hotel", "change": to_silver.pk, "reason": "again"}
    assert_problem(api.post(TIER, again, format="json"), 409, "already_rolled_back")
    redo = {"tier_type": "hotel", "reason": "redo"}
    assert_problem(api.post(TIER, redo, format="json"), 409, "rollback_not_reversible")
    assert MemberTierChange.objects.count() == stored
    # before the enrolment the member held no tier in the type: the assignment goes
    response = api.post(TIER, {"tier_type": "hotel", "change": enrolment.pk, "reason": "x"}, format="json")
    assert (response.status_code, response.json()["to"], response.json()["tiers"]) == (200, None, [])
    assert not MemberTierAssignment.objects.filter(member=ann).exists()
    # a change that left the member where they already are again has nothing to undo
    move(api, "member")
    move(api, "member", "same tier again")
    same = {"tier_type": "hotel", "reason": "x"}
    assert_problem(api.post(TIER, same, format="json"), 409, "nothing_to_roll_back")
    assert MemberTierChange.objects.count() == stored + 3


def test_the_same_idempotency_key_rolls_back_once(api, ann, ladder):
    move(api, "gold")
    body = {"tier_type": "hotel", "reason": "wrong member"}
    first = api.post(TIER, body, format="json", HTTP_IDEMPOTENCY_KEY="undo-1")
    replay = api.post(TIER, body, format="json", HTTP_IDEMPOTENCY_KEY="undo-1")
    assert (first.status_code, replay.status_code, replay["Idempotent-Replayed"]) == (200, 200, "true")
    assert replay.json() == first.json()
    assert MemberTierChange.objects.filter(member=ann, source="rollback").count() == 1
    assert AuditEntry.objects.filter(action="tier.rolled_back").count() == 1
    assert OutboxMessage.objects.filter(type="tier.changed", data__source="rollback").count() == 1


def test_reversing_a_point_transaction_exactly_once(api, ann, tenant):
    PointConversionRuleFactory(tenant=tenant, code="base")
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    earn = PointTransaction.objects.get(member=ann, kind="earn")
    response = api.post(POINTS, {"transaction": earn.pk, "reason": "fraudulent stay"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["points"], body["reversal_of"], body["event_id"], body["rule"]) == (
        "reversal",
        -1000,
        earn.pk,
        "s-1",
        "base",
    )
    assert api.get("/api/v1/member/ann/points").json()["total"] == 0
    assert_problem(api.post(POINTS, {"transaction": earn.pk, "reason": "x"}, format="json"), 409, "already_reversed")
    reversal = {"transaction": body["id"], "reason": "x"}
    assert_problem(api.post(POINTS, reversal, format="json"), 409, "reversal_not_reversible")
    assert PointTransaction.objects.filter(member=ann, kind="reversal").count() == 1
    message = OutboxMessage.objects.get(type="points.reverted")
    assert (message.data["rollback_of"], message.data["total"], message.data["reason"]) == (
        earn.pk,
        -1000,
        "fraudulent stay",
    )


def test_revoking_a_benefit_grant(api, ann, ladder, lounge):
    move(api, "gold")
    grant = MemberBenefit.objects.get(member=ann)
    response = api.post(BENEFIT, {"grant": grant.pk, "reason": "card shared"}, format="json")
    assert (response.status_code, response.json()["status"], response.json()["benefit"]) == (200, "revoked", "lounge")
    assert_problem(api.post(BENEFIT, {"grant": grant.pk, "reason": "x"}, format="json"), 409, "benefit_not_active")
    assert OutboxMessage.objects.filter(type="benefit.revoked").count() == 1


def test_the_history_lists_every_kind_newest_first(api, ann, ladder, lounge, tenant):
    PointConversionRuleFactory(tenant=tenant)
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    earn = PointTransaction.objects.get(member=ann, kind="earn")
    move(api, "gold")
    grant = MemberBenefit.objects.get(member=ann)
    gold = MemberTierChange.objects.filter(member=ann).first()
    assert api.post(POINTS, {"transaction": earn.pk, "reason": "fraud"}, format="json").status_code == 201
    assert api.post(BENEFIT, {"grant": grant.pk, "reason": "shared"}, format="json").status_code == 200
    assert api.post(TIER, {"tier_type": "hotel", "reason": "wrong"}, format="json").status_code == 200
    history = api.get(HISTORY).json()
    assert [(h["kind"], h["target"], h["reason"], h["actor"]) for h in history] == [
        ("tier", gold.pk, "wrong", "service:svc-test"),
        ("benefit", grant.pk, "shared", "service:svc-test"),
        ("points", earn.pk, "fraud", "service:svc-test"),
    ]
    assert set(history[0]) == {"id", "kind", "target", "reason", "actor", "at", "before", "after"}


def test_an_erased_member_cannot_be_rolled_back(api, ann, ladder, lounge, tenant):
    PointConversionRuleFactory(tenant=tenant)
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    move(api, "gold")
    earn, grant = PointTransaction.objects.get(member=ann, kind="earn"), MemberBenefit.objects.get(member=ann)
    assert api.post("/api/v1/member/ann/erase", {"reason": "request"}, format="json").status_code == 200
    changes, audit = MemberTierChange.objects.count(), AuditEntry.objects.count()
    assert_problem(api.post(TIER, {"tier_type": "hotel", "reason": "x"}, format="json"), 409, "member_erased")
    assert_problem(api.post(POINTS, {"transaction": earn.pk, "reason": "x"}, format="json"), 409, "member_erased")
    assert_problem(api.post(BENEFIT, {"grant": grant.pk, "reason": "x"}, format="json"), 409, "member_erased")
    assert (MemberTierChange.objects.count(), AuditEntry.objects.count()) == (changes, audit)
    assert PointTransaction.objects.filter(kind="reversal").count() == 0


def test_bad_input_foreign_ids_no_token_and_a_small_scope(api, ann, ladder, tenant, other_tenant, api_client_for):
    PointConversionRuleFactory(tenant=tenant)
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    move(api, "gold")
    earn = PointTransaction.objects.get(member=ann, kind="earn")
    bob = MemberFactory(tenant=tenant, external_id="bob")
    bobs_change = MemberTierChange.objects.create(
        tenant=tenant,
        member=bob,
        tier_type=ladder[0],
        to_tier=ladder[1]["member"],
        source="auto",
        actor="test",
        at=earn.occurred_at,
    )
    before = (MemberTierChange.objects.count(), AuditEntry.objects.count(), PointTransaction.objects.count())

    def errors(url: str, body: dict) -> dict:
        return assert_problem(api.post(url, body, format="json"), 422, "validation_error")["errors"]

    assert set(errors(TIER, {})) == {"tier_type", "reason"}
    assert set(errors(TIER, {"tier_type": "spa", "reason": "x"})) == {"tier_type"}
    assert set(errors(TIER, {"tier_type": "hotel", "change": "latest", "reason": "x"})) == {"change"}
    assert set(errors(TIER, {"tier_type": "hotel", "reason": "   "})) == {"reason"}
    assert set(errors(POINTS, {"transaction": "5", "reason": ""})) == {"reason"}
    assert set(errors(POINTS, {"transaction": -1, "reason": "x"})) == {"transaction"}
    assert set(errors(BENEFIT, {"grant": None, "reason": "x"})) == {"grant"}
    assert_problem(api.post(TIER, [1, 2], format="json"), 422, "validation_error")
    foreign_change = {"tier_type": "hotel", "change": bobs_change.pk, "reason": "x"}
    assert_problem(api.post(TIER, foreign_change, format="json"), 404, "tier_change_not_found")
    bob_tx = PointTransaction.objects.create(
        tenant=tenant, member=bob, kind="adjustment", points=5, occurred_at=earn.occurred_at
    )
    assert_problem(
        api.post(POINTS, {"transaction": bob_tx.pk, "reason": "x"}, format="json"), 404, "point_transaction_not_found"
    )
    assert_problem(api.post(BENEFIT, {"grant": 999999, "reason": "x"}, format="json"), 404, "benefit_grant_not_found")
    # another tenant: its member is not found, and ours is not theirs
    theirs = hotel_ladder(other_tenant)
    assert theirs
    MemberFactory(tenant=other_tenant, external_id="zed")
    other = api_client_for(other_tenant)
    for url in (TIER, POINTS, BENEFIT):
        assert_problem(
            other.post(url, {"tier_type": "hotel", "transaction": earn.pk, "grant": 1, "reason": "x"}, format="json"),
            404,
            "member_not_found",
        )
    assert_problem(other.get(HISTORY), 404, "member_not_found")
    assert_problem(api.get("/api/v1/member/zed/rollback/history"), 404, "member_not_found")
    # no token, too small a scope
    writer = api_client_for(tenant, "privilege:read privilege:write")
    for url in (TIER, POINTS, BENEFIT):
        assert_problem(APIClient().post(url, {}, format="json"), 401, "not_authenticated")
        assert_problem(
            writer.post(url, {"tier_type": "hotel", "reason": "x"}, format="json"), 403, "insufficient_scope"
        )
    assert_problem(APIClient().get(HISTORY), 401, "not_authenticated")
    assert_problem(writer.get(HISTORY), 403, "insufficient_scope")
    after = (MemberTierChange.objects.count(), AuditEntry.objects.count(), PointTransaction.objects.count())
    assert after == (before[0], before[1], before[2] + 1)  # only bob's hand-made transaction
    assert Member.objects.get(pk=ann.pk).tier_assignments.get().tier.code == "gold"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rollbacks_and_events_of_one_member_never_interleave():
    from events.ingestion import ingest_event
    from events.registration import register_member
    from events.rollback import RollbackNotReversible, rollback_tier_change
    from members.services import Registration
    from tests.concurrency import race
    from tests.events.test_async_and_batch import _validated
    from tests.factories import TenantFactory
    from tiers.assignments import change_member_tier
    from tiers.metrics import daily_metrics

    tenant = TenantFactory(slug="busy", timezone="Asia/Bangkok")
    tier_type, tiers, _ = hotel_ladder(tenant)
    member, _ = register_member(tenant=tenant, registration=Registration(external_id="hot"), actor="t")
    change_member_tier(tenant=tenant, member=member, tier=tiers["gold"], reason="goodwill", actor="t")

    def work(index: int):
        if index % 2:
            ingest_event(tenant=tenant, member_id="hot", data=_validated(stay(f"e{index}")), actor="t")
            return "event"
        rollback_tier_change(tenant=tenant, member=member, tier_type=tier_type, reason="race", actor="t")
        return "rolled back"

    results = race(10, work)
    assert sorted(map(str, results)) == sorted(["event"] * 5 + ["rolled back"] + [str(RollbackNotReversible())] * 4)
    assert MemberTierChange.objects.filter(member=member, source="rollback").count() == 1
    assert held(member)[0] == "member"
    assert daily_metrics(member=member).total("transactions", None, timezone.now().date() + timedelta(days=1)) == 5

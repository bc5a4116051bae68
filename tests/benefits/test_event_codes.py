"""``POST /member/{memberId}/event-code/redeem`` (DOMAIN §6): every action, every refusal (with nothing
stored), the per-member limit, the failed-attempt limit (429), idempotency, auth, the admin pages, and
on PostgreSQL single-use codes under concurrency."""

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from benefits.models import Benefit, EventCode, EventCodeRedemption, MemberBenefit, TierBenefitMapping
from config.api import SCOPE_READ, SCOPE_WRITE
from events.event_codes import CodeExpired, CodeNotYetValid, redeem_event_code
from members.models import Member, MetricDay
from outbox.models import OutboxMessage
from points.models import PointBucket, PointTransaction
from tests.concurrency import race
from tests.factories import MemberFactory, TenantFactory, TenantMembershipFactory, UserFactory, hotel_ladder
from tests.helpers import assert_problem
from tiers.models import MemberTierAssignment, MemberTierChange

URL = "/api/v1/member/{}/event-code/redeem"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_attempt_cache(settings):
    """Failed attempts live in the cache: each test gets a cache of its own (also under -n and when
    the environment points the cache at a shared Redis)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


def make_code(tenant, code="VIPINVITE2027", action="award_points", **fields):
    if action == "award_points":
        fields.setdefault("points", 500)
    return EventCode.objects.create(tenant=tenant, code=code, action=action, **fields)


def redeem(client, code, member="ann", **extra):
    return client.post(URL.format(member), {"code": code}, format="json", **extra)


def stored():
    """Everything a redemption may write (counts), and every code's counter."""
    return (
        EventCodeRedemption.objects.count(),
        OutboxMessage.objects.count(),
        AuditEntry.objects.count(),
        PointTransaction.objects.count(),
        MemberBenefit.objects.count(),
        MemberTierChange.objects.count(),
        dict(EventCode.objects.values_list("code", "redemptions")),
        dict(Benefit.objects.values_list("code", "granted_count")),
    )


def _when(body):
    return datetime.fromisoformat(body["redeemed_at"])


# --- award_points --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_award_points_writes_a_code_transaction_redemption_audit_and_messages(api, tenant, ann):
    code = make_code(tenant, "WELCOME500", max_redemptions=100)
    audit_mark = AuditEntry.objects.order_by("-id").first().pk
    outbox_mark = set(OutboxMessage.objects.values_list("id", flat=True))

    response = redeem(api, "  welcome500 ", HTTP_X_REQUEST_ID="redeem-1")

    assert response.status_code == 201, response.content
    body = response.json()
    tx = PointTransaction.objects.get(kind="code")
    redemption = EventCodeRedemption.objects.get()
    assert body == {
        "id": redemption.pk,
        "code": "WELCOME500",
        "action": "award_points",
        "redeemed_at": body["redeemed_at"],
        "tier_change": None,
        "grants": None,
        "points": {"transaction": tx.pk, "points": 500},
    }
    assert (tx.member, tx.points, tx.uncapped, tx.occurred_at, tx.correlation_id) == (
        ann,
        500,
        500,
        _when(body),
        "redeem-1",
    )
    assert (redemption.member, redemption.event_code, redemption.at, redemption.result) == (
        ann,
        code,
        _when(body),
        {"points": {"transaction": tx.pk, "points": 500}},
    )
    code.refresh_from_db()
    assert code.redemptions == 1
    messages = list(OutboxMessage.objects.exclude(id__in=outbox_mark).order_by("sequence").values_list("type", "data"))
    assert [m[0] for m in messages] == ["points.applied", "event_code.redeemed"]
    assert messages[0][1]["kind"] == "code"
    assert messages[0][1]["code"] == "WELCOME500"
    assert messages[0][1]["total"] == 500
    assert [t["id"] for t in messages[0][1]["transactions"]] == [tx.pk]
    assert messages[1][1] == {
        "redemption": redemption.pk,
        "code": "WELCOME500",
        "action": "award_points",
        "result": {"points": {"transaction": tx.pk, "points": 500}},
    }
    assert list(AuditEntry.objects.filter(id__gt=audit_mark).values_list("action", "actor", "member_id")) == [
        ("event_code.redeemed", "service:svc-test", "ann")
    ]
    # Not qualifying: no tier metric, no cap bucket; but in the balance.
    assert not MetricDay.objects.filter(member=ann).exists()
    assert not PointBucket.objects.filter(member=ann).exists()
    assert api.get("/api/v1/member/ann/points").json()["total"] == 500


@pytest.mark.django_db
def test_codes_match_in_any_letter_case(api, tenant, ann):
    make_code(tenant, "SUMMER-Bonus_1".upper(), per_member_limit=3)
    assert [redeem(api, c).status_code for c in ("summer-bonus_1", "Summer-Bonus_1", " SUMMER-BONUS_1\t")] == [
        201,
        201,
        201,
    ]
    assert EventCode.objects.get().redemptions == 3


# --- promote_tier --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_promote_tier_is_an_invitation_to_a_non_climbable_tier_with_its_benefits(api, tenant, ann, ladder):
    _, tiers, _ = ladder
    suite = Benefit.objects.create(tenant=tenant, code="suite", name="Suite upgrade")
    TierBenefitMapping.objects.create(tenant=tenant, tier=tiers["platinum"], benefit=suite)
    make_code(tenant, "PLATINUM-NOW", action="promote_tier", tier=tiers["platinum"])
    assert tiers["platinum"].climbable is False
    audit_mark = AuditEntry.objects.order_by("-id").first().pk
    outbox_mark = set(OutboxMessage.objects.values_list("id", flat=True))

    response = redeem(api, "platinum-now")

    assert response.status_code == 201, response.content
    body = response.json()
    change = MemberTierChange.objects.get(source="event_code")
    assert body["tier_change"] == {
        "tier_type": "hotel",
        "from": "member",
        "to": "platinum",
        "from_rank": 1,
        "to_rank": 4,
        "change": change.pk,
    }
    assert (body["action"], body["grants"], body["points"]) == ("promote_tier", None, None)
    assert (change.from_tier, change.to_tier, change.reason) == (
        tiers["member"],
        tiers["platinum"],
        "event code PLATINUM-NOW",
    )
    assignment = MemberTierAssignment.objects.get(member=ann)
    assert (assignment.tier, assignment.source) == (tiers["platinum"], "event_code")
    # change_member_tier re-syncs tier benefits itself: exactly one grant, one benefit.applied.
    assert list(MemberBenefit.objects.filter(member=ann).values_list("benefit__code", "source", "source_ref")) == [
        ("suite", "tier", "platinum")
    ]
    assert [
        t for (t,) in OutboxMessage.objects.exclude(id__in=outbox_mark).order_by("sequence").values_list("type")
    ] == ["tier.changed", "benefit.applied", "event_code.redeemed"]
    assert list(AuditEntry.objects.filter(id__gt=audit_mark).order_by("id").values_list("action", flat=True)) == [
        "member.tier_changed",
        "benefit.granted",
        "event_code.redeemed",
    ]
    assert EventCodeRedemption.objects.get().result == {"tier_change": body["tier_change"]}
    assert EventCode.objects.get().redemptions == 1


@pytest.mark.parametrize(
    ("held", "target", "immutable", "code"),
    [
        ("gold", "silver", False, "invitation_not_upward"),
        ("gold", "gold", False, "invitation_not_upward"),
        ("silver", "platinum", True, "tier_immutable"),
    ],
    ids=["lower-than-held", "same-as-held", "out-of-immutable"],
)
@pytest.mark.django_db
def test_a_refused_promotion_consumes_nothing(api, tenant, ann, ladder, held, target, immutable, code):
    _, tiers, _ = ladder
    if immutable:
        tiers[held].immutable = True
        tiers[held].save()
    MemberTierAssignment.objects.filter(member=ann).update(tier=tiers[held])
    make_code(tenant, "UP", action="promote_tier", tier=tiers[target], max_redemptions=1)
    before = stored()
    assert_problem(redeem(api, "up"), 409, code)
    assert stored() == before
    assert MemberTierAssignment.objects.get(member=ann).tier == tiers[held]


@pytest.mark.django_db
def test_a_tier_that_cannot_be_assigned_now_is_a_409(api, tenant, ann, ladder):
    _, tiers, _ = ladder
    tiers["gold"].available_until = timezone.now() - timedelta(days=1)
    tiers["gold"].save()
    make_code(tenant, "GOLD", action="promote_tier", tier=tiers["gold"])
    before = stored()
    body = assert_problem(redeem(api, "gold"), 409, "tier_unavailable")
    assert body["detail"] == "Tier gold is not assignable now (time-bound tier)."
    assert stored() == before


@pytest.mark.django_db
def test_promotion_of_a_member_without_a_tier_in_the_type(api, tenant, ann, ladder):
    _, tiers, _ = ladder
    MemberTierAssignment.objects.filter(member=ann).delete()
    make_code(tenant, "SILVER", action="promote_tier", tier=tiers["silver"])
    assert redeem(api, "silver").json()["tier_change"]["from"] is None
    assert MemberTierAssignment.objects.get(member=ann).tier == tiers["silver"]


# --- grant_benefit -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_grant_benefit_grants_an_event_code_grant(api, tenant, ann):
    lounge = Benefit.objects.create(
        tenant=tenant, code="lounge", name="Lounge", lifetime="temporary", duration_days=7, total_quantity=10
    )
    make_code(tenant, "LOUNGE7", action="grant_benefit", benefit=lounge)
    outbox_mark = set(OutboxMessage.objects.values_list("id", flat=True))

    response = redeem(api, "lounge7")

    assert response.status_code == 201, response.content
    body = response.json()
    grant = MemberBenefit.objects.get(member=ann, benefit=lounge)
    assert (grant.source, grant.source_ref, grant.status, grant.reason) == (
        "event_code",
        "LOUNGE7",
        "active",
        "event code LOUNGE7",
    )
    assert grant.expires_at == _when(body) + timedelta(days=7)
    assert body["grants"] == [
        {"id": grant.pk, "benefit": "lounge", "expires_at": body["grants"][0]["expires_at"], "via": []}
    ]
    assert datetime.fromisoformat(body["grants"][0]["expires_at"]) == grant.expires_at
    assert (body["tier_change"], body["points"]) == (None, None)
    assert Benefit.objects.get(code="lounge").granted_count == 1
    types = list(OutboxMessage.objects.exclude(id__in=outbox_mark).order_by("sequence").values_list("type", flat=True))
    assert types == ["benefit.applied", "event_code.redeemed"]
    assert api.get("/api/v1/member/ann/benefit").json()[0]["source"] == "event_code"


@pytest.mark.django_db
def test_a_bundle_grants_its_components(api, tenant, ann):
    late = Benefit.objects.create(tenant=tenant, code="late", name="Late checkout")
    drink = Benefit.objects.create(tenant=tenant, code="drink", name="Welcome drink")
    pack = Benefit.objects.create(tenant=tenant, code="pack", name="Arrival pack")
    pack.components.set([late, drink])
    make_code(tenant, "PACK", action="grant_benefit", benefit=pack)
    body = redeem(api, "pack").json()
    assert [(g["benefit"], g["via"]) for g in body["grants"]] == [("late", ["pack"]), ("drink", ["pack"])]
    assert sorted(MemberBenefit.objects.values_list("benefit__code", "source", "source_ref")) == [
        ("drink", "event_code", "PACK"),
        ("late", "event_code", "PACK"),
    ]


@pytest.mark.django_db
def test_an_exhausted_benefit_is_a_409_and_the_code_is_not_consumed(api, tenant, ann):
    voucher = Benefit.objects.create(tenant=tenant, code="voucher", name="Voucher", total_quantity=1)
    Benefit.objects.filter(pk=voucher.pk).update(granted_count=1)
    make_code(tenant, "VOUCHER", action="grant_benefit", benefit=voucher, max_redemptions=5)
    before = stored()
    assert_problem(redeem(api, "voucher"), 409, "benefit_exhausted")
    assert stored() == before


@pytest.mark.django_db
def test_a_bundle_with_one_exhausted_component_grants_nothing(api, tenant, ann):
    free = Benefit.objects.create(tenant=tenant, code="a-free", name="Free")
    scarce = Benefit.objects.create(tenant=tenant, code="b-scarce", name="Scarce", total_quantity=1)
    Benefit.objects.filter(pk=scarce.pk).update(granted_count=1)
    pack = Benefit.objects.create(tenant=tenant, code="pack", name="Pack")
    pack.components.set([free, scarce])
    make_code(tenant, "PACK", action="grant_benefit", benefit=pack)
    before = stored()
    assert_problem(redeem(api, "pack"), 409, "benefit_exhausted")
    assert stored() == before  # a-free's grant and count were rolled back too


@pytest.mark.django_db
def test_a_benefit_already_held_from_an_event_code_is_a_409_not_an_integrity_error(api, tenant, ann):
    late = Benefit.objects.create(tenant=tenant, code="late", name="Late checkout")
    make_code(tenant, "LATE", action="grant_benefit", benefit=late, per_member_limit=2)
    make_code(tenant, "LATE-AGAIN", action="grant_benefit", benefit=late)
    assert redeem(api, "late").status_code == 201
    before = stored()
    assert_problem(redeem(api, "late"), 409, "benefit_already_held")
    assert_problem(redeem(api, "late-again"), 409, "benefit_already_held")
    assert stored() == before
    # Once the grant is no longer active, the code gives it again.
    MemberBenefit.objects.update(status="used_up")
    assert redeem(api, "late").status_code == 201
    assert EventCode.objects.get(code="LATE").redemptions == 2


@pytest.mark.django_db
def test_a_benefit_held_from_a_tier_is_still_granted_from_the_code(api, tenant, ann):
    late = Benefit.objects.create(tenant=tenant, code="late", name="Late checkout")
    MemberBenefit.objects.create(tenant=tenant, member=ann, benefit=late, source="tier", granted_at=NOW)
    make_code(tenant, "LATE", action="grant_benefit", benefit=late)
    assert redeem(api, "late").status_code == 201
    assert sorted(MemberBenefit.objects.values_list("source", flat=True)) == ["event_code", "tier"]


@pytest.mark.parametrize(
    "benefit_fields",
    [
        {"active": False},
        {"valid_until": datetime(2020, 1, 1, tzinfo=UTC)},
        {
            "lifetime": "conditional",
            "criteria": [{"metric": "spend", "operator": "gte", "value": 1000, "window_days": None}],
        },
    ],
    ids=["inactive", "past-its-window", "conditions-not-met"],
)
@pytest.mark.django_db
def test_a_benefit_that_cannot_be_granted_now_is_a_409(api, tenant, ann, benefit_fields):
    benefit = Benefit.objects.create(tenant=tenant, code="perk", name="Perk", **benefit_fields)
    make_code(tenant, "PERK", action="grant_benefit", benefit=benefit)
    before = stored()
    assert_problem(redeem(api, "perk"), 409, "benefit_unavailable")
    assert stored() == before


# --- the code's own refusals ---------------------------------------------------------------------
CODE_REFUSALS = [
    ("unknown", {}, "NOPE", 404, "code_not_found"),
    ("inactive", {"active": False}, "X", 409, "code_inactive"),
    ("not-yet-valid", {"valid_from": timezone.now() + timedelta(days=1)}, "X", 409, "code_not_yet_valid"),
    ("expired", {"valid_until": timezone.now() - timedelta(seconds=1)}, "X", 409, "code_expired"),
    ("exhausted", {"max_redemptions": 1, "redemptions": 1}, "X", 409, "code_exhausted"),
    ("empty-after-trim", {}, "   ", 422, "validation_error"),
]


@pytest.mark.parametrize(
    ("fields", "attempt", "status", "code"), [c[1:] for c in CODE_REFUSALS], ids=[c[0] for c in CODE_REFUSALS]
)
@pytest.mark.django_db
def test_each_refusal_has_its_own_code_and_stores_nothing(api, tenant, ann, fields, attempt, status, code):
    make_code(tenant, "X", **fields)
    before = stored()
    assert_problem(redeem(api, attempt), status, code)
    assert stored() == before


@pytest.mark.django_db
def test_another_tenants_code_does_not_exist_here(api, tenant, other_tenant, ann):
    make_code(other_tenant, "THEIRS")
    before = stored()
    assert_problem(redeem(api, "theirs"), 404, "code_not_found")
    assert stored() == before


@pytest.mark.parametrize("status", ["suspended", "erased"])
@pytest.mark.django_db
def test_a_member_who_is_not_active_redeems_nothing(api, tenant, ann, status):
    Member.objects.filter(pk=ann.pk).update(status=status)
    make_code(tenant, "X")
    before = stored()
    body = assert_problem(redeem(api, "x"), 409, "member_not_active")
    assert body["detail"] == f"The member is {status}; only an active member can redeem event codes."
    assert stored() == before


@pytest.mark.django_db
def test_the_validity_window_starts_inclusive_and_ends_exclusive(tenant, ann):
    start, end = NOW, NOW + timedelta(days=30)
    make_code(tenant, "WINDOW", valid_from=start, valid_until=end, per_member_limit=5)
    with pytest.raises(CodeNotYetValid):
        redeem_event_code(tenant=tenant, member=ann, code="window", actor="t", now=start - timedelta(microseconds=1))
    assert redeem_event_code(tenant=tenant, member=ann, code="window", actor="t", now=start).redeemed_at == start
    last = end - timedelta(microseconds=1)
    assert redeem_event_code(tenant=tenant, member=ann, code="window", actor="t", now=last).points["points"] == 500
    with pytest.raises(CodeExpired):
        redeem_event_code(tenant=tenant, member=ann, code="window", actor="t", now=end)
    assert EventCode.objects.get().redemptions == 2


@pytest.mark.django_db
def test_per_member_limit_then_409_while_others_still_redeem(api, tenant, ann, api_client_for):
    make_code(tenant, "TWICE", per_member_limit=2, max_redemptions=10)
    MemberFactory(tenant=tenant, external_id="bob")
    assert [redeem(api, "twice").status_code for _ in range(2)] == [201, 201]
    before = stored()
    assert_problem(redeem(api, "twice"), 409, "code_limit_reached")
    assert stored() == before
    assert redeem(api, "twice", member="bob").status_code == 201
    assert EventCode.objects.get().redemptions == 3
    assert EventCodeRedemption.objects.filter(member__external_id="ann").count() == 2


@pytest.mark.django_db
def test_a_member_repeating_a_single_use_code_is_told_their_limit_not_exhausted(api, tenant, ann):
    make_code(tenant, "ONCE", max_redemptions=1)
    assert redeem(api, "once").status_code == 201
    assert_problem(redeem(api, "once"), 409, "code_limit_reached")
    MemberFactory(tenant=tenant, external_id="bob")
    assert_problem(redeem(api, "once", member="bob"), 409, "code_exhausted")


@pytest.mark.django_db
def test_unlimited_code_counts_every_redemption(api, tenant, ann):
    make_code(tenant, "OPEN", max_redemptions=None)
    for i in range(3):
        MemberFactory(tenant=tenant, external_id=f"m{i}")
        assert redeem(api, "open", member=f"m{i}").status_code == 201
    assert EventCode.objects.get().redemptions == 3


# --- failed attempts -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_failed_attempts_are_limited_per_member_with_retry_after(api, tenant, ann, settings):
    settings.EVENT_CODE_MAX_FAILURES = 3
    settings.EVENT_CODE_FAILURE_WINDOW = 600
    make_code(tenant, "GOOD", max_redemptions=5)
    MemberFactory(tenant=tenant, external_id="bob")
    for guess in ("AAA", "BBB", "CCC"):
        assert_problem(redeem(api, guess), 404, "code_not_found")
    before = stored()
    response = redeem(api, "good")  # even a good code: not looked up
    body = assert_problem(response, 429, "too_many_attempts")
    assert body["detail"] == "Too many failed event-code attempts; try again later."
    assert 590 <= int(response["Retry-After"]) <= 600
    assert stored() == before
    assert redeem(api, "good", member="bob").status_code == 201  # another member is not limited


@pytest.mark.django_db
def test_every_code_failure_counts(api, tenant, ann, settings):
    settings.EVENT_CODE_MAX_FAILURES = 5
    make_code(tenant, "OFF", active=False)
    make_code(tenant, "LATER", valid_from=timezone.now() + timedelta(days=1))
    make_code(tenant, "GONE", valid_until=timezone.now() - timedelta(days=1))
    make_code(tenant, "FULL", max_redemptions=1, redemptions=1)
    make_code(tenant, "MINE")
    assert redeem(api, "mine").status_code == 201
    codes = [redeem(api, c).json()["code"] for c in ("off", "later", "gone", "full", "mine")]
    assert codes == ["code_inactive", "code_not_yet_valid", "code_expired", "code_exhausted", "code_limit_reached"]
    assert_problem(redeem(api, "anything"), 429, "too_many_attempts")


@pytest.mark.django_db
def test_a_success_neither_counts_nor_resets_the_failures(api, tenant, ann, settings):
    settings.EVENT_CODE_MAX_FAILURES = 3
    make_code(tenant, "GOOD", per_member_limit=5)
    assert [redeem(api, c).status_code for c in ("x1", "x2", "good", "x3")] == [404, 404, 201, 404]
    assert_problem(redeem(api, "good"), 429, "too_many_attempts")
    assert EventCode.objects.get().redemptions == 1


@pytest.mark.django_db
def test_refusals_of_the_action_and_bad_requests_do_not_count(api, tenant, ann, ladder, settings):
    settings.EVENT_CODE_MAX_FAILURES = 2
    _, tiers, _ = ladder
    make_code(tenant, "DOWN", action="promote_tier", tier=tiers["member"])
    for _ in range(3):
        assert_problem(redeem(api, "down"), 409, "invitation_not_upward")
        assert_problem(api.post(URL.format("ann"), {}, format="json"), 422, "validation_error")
    assert_problem(redeem(api, "nope"), 404, "code_not_found")


@pytest.mark.django_db
def test_the_window_closes(api, tenant, ann, settings):
    settings.EVENT_CODE_MAX_FAILURES = 1
    settings.EVENT_CODE_FAILURE_WINDOW = 1
    make_code(tenant, "GOOD")
    assert_problem(redeem(api, "bad"), 404, "code_not_found")
    assert_problem(redeem(api, "good"), 429, "too_many_attempts")
    time.sleep(1.1)
    assert redeem(api, "good").status_code == 201


@pytest.mark.redis
@pytest.mark.django_db
def test_failed_attempts_on_redis(api, tenant, ann, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    import redis

    settings.EVENT_CODE_MAX_FAILURES = 2
    make_code(tenant, "GOOD")
    assert [redeem(api, c).status_code for c in ("a", "b", "good")] == [404, 404, 429]
    key = f"event-code-failures:{tenant.pk}:{ann.pk}"
    assert cache.get(key) == 2
    ttl = redis.Redis.from_url(settings.REDIS_URL).ttl(cache.make_key(key))
    assert 890 <= ttl <= 900  # the window opened at the first failure; incr kept it


# --- idempotency ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_idempotency_key_replays_the_original_redemption(api, tenant, ann):
    make_code(tenant, "ONCE", max_redemptions=1)
    first = redeem(api, "once", HTTP_IDEMPOTENCY_KEY="redeem-ann-1")
    before = stored()
    again = redeem(api, "once", HTTP_IDEMPOTENCY_KEY="redeem-ann-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert stored() == before
    assert_problem(redeem(api, "ONCE", HTTP_IDEMPOTENCY_KEY="redeem-ann-1"), 409, "idempotency_conflict")
    assert_problem(redeem(api, "once"), 409, "code_limit_reached")  # without the key: a new attempt
    assert stored() == before


@pytest.mark.django_db
def test_a_failed_redemption_keeps_no_idempotency_record(api, tenant, ann):
    assert_problem(redeem(api, "later", HTTP_IDEMPOTENCY_KEY="k1"), 404, "code_not_found")
    make_code(tenant, "LATER")
    assert redeem(api, "later", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201


# --- auth and input ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_auth_scope_and_tenant(api, tenant, other_tenant, ann, api_client_for):
    make_code(tenant, "X", per_member_limit=5)
    MemberFactory(tenant=other_tenant, external_id="theirs")
    before = stored()
    assert_problem(APIClient().post(URL.format("ann"), {"code": "x"}, format="json"), 401, "not_authenticated")
    assert_problem(redeem(api_client_for(tenant, SCOPE_READ), "x"), 403, "insufficient_scope")
    assert_problem(redeem(api, "x", member="theirs"), 404, "member_not_found")
    assert_problem(redeem(api, "x", member="ghost"), 404, "member_not_found")
    assert stored() == before
    assert redeem(api_client_for(tenant, SCOPE_WRITE), "x").status_code == 201


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"code": ["This field is required."]}),
        ({"code": ""}, {"code": ["This field may not be blank."]}),
        ({"code": None}, {"code": ["This field may not be null."]}),
        ({"code": "X" * 65}, {"code": ["Ensure this field has no more than 64 characters."]}),
        ({"code": ["X"]}, {"code": ["Not a valid string."]}),
    ],
    ids=["missing", "blank", "null", "too-long", "not-a-string"],
)
@pytest.mark.django_db
def test_a_malformed_body_is_a_422_with_nothing_stored(api, tenant, ann, body, errors):
    make_code(tenant, "X")
    before = stored()
    problem = assert_problem(api.post(URL.format("ann"), body, format="json"), 422, "validation_error")
    assert problem["errors"] == errors
    assert stored() == before


@pytest.mark.django_db
def test_malformed_json_is_a_400(api, tenant, ann):
    response = api.generic("POST", URL.format("ann"), '{"code": ', content_type="application/json")
    assert_problem(response, 400, "malformed_json")


# --- admin ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_admin_shows_the_count_and_the_latest_redemptions(client, tenant, ann):
    user = UserFactory(username="eve")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="benefits"))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)
    code = make_code(tenant, "POPULAR", max_redemptions=None)
    for i in range(25):
        EventCodeRedemption.objects.create(
            tenant=tenant, event_code=code, member=ann, at=NOW + timedelta(minutes=i), result={"n": i}
        )
    EventCode.objects.filter(pk=code.pk).update(redemptions=25)

    changelist = client.get(reverse("admin:benefits_eventcode_changelist"))
    assert '<td class="field-redemption_count">25</td>' in changelist.content.decode()

    page = client.get(reverse("admin:benefits_eventcode_change", args=[code.pk]))
    assert page.status_code == 200
    (formset,) = [f for f in page.context["inline_admin_formsets"] if f.formset.model is EventCodeRedemption]
    shown = [form.original for form in formset]
    assert [r.result["n"] for r in shown] == list(range(24, 4, -1))  # the latest 20, newest first
    assert formset.has_add_permission is False
    assert "{&quot;n&quot;: 24}" in page.content.decode()

    data = {
        "code": "POPULAR",
        "name": "Popular",
        "active": "on",
        "action": "award_points",
        "tier": "",
        "benefit": "",
        "points": 700,
        "max_redemptions": "",
        "per_member_limit": 1,
        "valid_from_0": "",
        "valid_from_1": "",
        "valid_until_0": "",
        "valid_until_1": "",
    }  # no formset data for the redemptions: they are shown, never posted
    assert client.post(reverse("admin:benefits_eventcode_change", args=[code.pk]), data).status_code == 302
    code.refresh_from_db()
    assert (code.points, code.redemptions, EventCodeRedemption.objects.count()) == (700, 25, 25)


# --- PostgreSQL: concurrency ---------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_single_use_code_redeemed_by_50_members_at_once_succeeds_once(api_client_for):
    tenant = TenantFactory(slug="rush-codes")
    hotel_ladder(tenant)
    code = make_code(tenant, "ONLYONE", max_redemptions=1)
    for i in range(50):
        MemberFactory(tenant=tenant, external_id=f"m{i}")
    clients = [api_client_for(tenant) for _ in range(50)]

    def attempt(i):
        response = redeem(clients[i], "onlyone", member=f"m{i}")
        return response.status_code, json.loads(response.content).get("code") if response.status_code != 201 else None

    results = race(50, attempt)
    assert Counter(results) == {(201, None): 1, (409, "code_exhausted"): 49}, results
    code.refresh_from_db()
    assert code.redemptions == 1
    assert EventCodeRedemption.objects.count() == 1
    assert PointTransaction.objects.filter(kind="code").count() == 1
    assert OutboxMessage.objects.filter(type="event_code.redeemed").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_member_from_10_threads_gets_a_per_member_limit_of_1_once(api_client_for, settings):
    settings.EVENT_CODE_MAX_FAILURES = 100
    tenant = TenantFactory(slug="greedy-codes")
    code = make_code(tenant, "MANY", max_redemptions=None, per_member_limit=1)
    MemberFactory(tenant=tenant, external_id="greedy")
    clients = [api_client_for(tenant) for _ in range(10)]

    def attempt(i):
        response = redeem(clients[i], "many", member="greedy")
        return response.status_code, json.loads(response.content).get("code") if response.status_code != 201 else None

    results = race(10, attempt)
    assert Counter(results) == {(201, None): 1, (409, "code_limit_reached"): 9}, results
    code.refresh_from_db()
    assert code.redemptions == 1
    assert EventCodeRedemption.objects.count() == 1
    assert PointTransaction.objects.filter(kind="code").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_limited_benefit_code_raced_by_members_never_oversells(api_client_for):
    tenant = TenantFactory(slug="scarce-codes")
    scarce = Benefit.objects.create(tenant=tenant, code="scarce", name="Scarce", total_quantity=3)
    code = make_code(tenant, "SCARCE", action="grant_benefit", benefit=scarce, max_redemptions=None)
    for i in range(20):
        MemberFactory(tenant=tenant, external_id=f"s{i}")
    clients = [api_client_for(tenant) for _ in range(20)]

    def attempt(i):
        response = redeem(clients[i], "scarce", member=f"s{i}")
        return response.status_code, json.loads(response.content).get("code") if response.status_code != 201 else None

    results = race(20, attempt)
    assert Counter(results) == {(201, None): 3, (409, "benefit_exhausted"): 17}, results
    code.refresh_from_db()
    scarce.refresh_from_db()
    assert (code.redemptions, scarce.granted_count, MemberBenefit.objects.count()) == (3, 3, 3)
    assert EventCodeRedemption.objects.count() == 3

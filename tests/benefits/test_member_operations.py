"""A member's grants in operation (DOMAIN §5): claims, the periodic expiry, re-evaluation on demand,
one benefit's eligibility explained, and the admin's revocation — exact outcomes, messages and audit
rows, and nothing at all when a request is refused."""

import json
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from benefits.engine import (
    ELIGIBILITY_REASONS,
    BenefitSpec,
    HeldTier,
    TierMappingSpec,
    benefit_eligibility,
    entitled_throughout,
    tier_benefits,
)
from benefits.grants import LOST_REASON
from benefits.member_grants import expire_grants, revoke_member_grant
from benefits.models import Benefit, MemberBenefit, TierBenefitMapping
from benefits.services import assign_tier_benefit, save_benefit, unassign_tier_benefit
from benefits.tasks import expire_due_grants
from members.models import Member
from outbox.models import OutboxMessage
from tests.concurrency import race
from tests.events.test_ingestion import stay
from tests.factories import MemberFactory, TenantFactory, TenantMembershipFactory, UserFactory, hotel_ladder
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db


# --- helpers --------------------------------------------------------------------------------------
@pytest.fixture
def tiers(ladder):
    return ladder[1]


def make_benefit(tenant, code, *, tier=None, inheritable=True, components=None, **fields):
    """A benefit through the service, mapped to ``tier`` when given (configuration is versioned)."""
    benefit = save_benefit(
        tenant=tenant, benefit=Benefit(code=code, name=code.title(), **fields), actor="t", components=components
    )
    if tier is not None:
        assign_tier_benefit(tenant=tenant, tier=tier, benefit=benefit, actor="t", inheritable=inheritable)
    return benefit


def register(client, external_id, **fields):
    response = client.post("/api/v1/member", {"external_id": external_id, **fields}, format="json")
    assert response.status_code == 201, response.content


def move(client, external_id, tier_code):
    body = {"tier_type": "hotel", "tier": tier_code, "reason": "test"}
    response = client.put(f"/api/v1/member/{external_id}/tier", body, format="json")
    assert response.status_code == 200, response.content


def active_grant(external_id, code):
    return MemberBenefit.objects.get(member__external_id=external_id, benefit__code=code, status="active")


def use(client, external_id, grant_id, **extra):
    return client.post(f"/api/v1/member/{external_id}/benefit/{grant_id}/use", **extra)


def apply(client, external_id):
    return client.post(f"/api/v1/member/{external_id}/benefit/apply")


def eligibility(client, external_id, benefit):
    return client.post(f"/api/v1/member/{external_id}/benefit/eligibility", {"benefit": benefit}, format="json")


def outbox(member_id):
    """The member's messages in sequence order: (type, benefit code or None)."""
    return [
        (m.type, m.data.get("benefit")) for m in OutboxMessage.objects.filter(member_id=member_id).order_by("sequence")
    ]


def state():
    """Everything a refused request must leave as it was."""
    return (
        list(MemberBenefit.objects.order_by("pk").values_list("pk", "status", "uses", "closed_at")),
        list(Benefit.objects.order_by("pk").values_list("pk", "granted_count")),
        OutboxMessage.objects.count(),
        AuditEntry.objects.count(),
    )


# --- claims ---------------------------------------------------------------------------------------
def test_a_claim_counts_one_use_and_the_last_use_closes_the_grant(api, tenant, tiers):
    make_benefit(tenant, "lounge", tier=tiers["gold"], usage_limit=3)
    register(api, "ann")
    move(api, "ann", "gold")
    grant = active_grant("ann", "lounge")

    responses = [use(api, "ann", grant.pk) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    bodies = [r.json() for r in responses]
    assert [(b["id"], b["benefit"], b["uses"], b["remaining"], b["usage_limit"], b["status"]) for b in bodies] == [
        (grant.pk, "lounge", 1, 2, 3, "active"),
        (grant.pk, "lounge", 2, 1, 3, "active"),
        (grant.pk, "lounge", 3, 0, 3, "used_up"),
    ]
    assert [b["closed_at"] is None for b in bodies] == [True, True, False]
    before = state()
    body = assert_problem(use(api, "ann", grant.pk), 409, "benefit_used_up")
    assert body["detail"] == "This grant has no uses left (3 of 3 used)."
    assert state() == before  # a refused claim changes nothing, writes no message and no audit entry

    grant.refresh_from_db()
    assert (grant.uses, grant.status) == (3, "used_up")
    assert grant.closed_at.isoformat().replace("+00:00", "Z") == bodies[2]["closed_at"]
    used = OutboxMessage.objects.filter(member_id="ann", type="benefit.used").order_by("sequence")
    assert [m.data for m in used] == [
        {"grant": grant.pk, "benefit": "lounge", "uses": 1, "remaining": 2, "status": "active"},
        {"grant": grant.pk, "benefit": "lounge", "uses": 2, "remaining": 1, "status": "active"},
        {"grant": grant.pk, "benefit": "lounge", "uses": 3, "remaining": 0, "status": "used_up"},
    ]
    audits = AuditEntry.objects.filter(action="benefit.used").order_by("id")
    assert [(a.target_type, a.target_id, a.member_id, a.actor, a.before, a.after) for a in audits] == [
        ("benefits.memberbenefit", str(grant.pk), "ann", "service:svc-test", before_, after_)
        for before_, after_ in (
            ({"uses": 0, "status": "active"}, {"uses": 1, "status": "active"}),
            ({"uses": 1, "status": "active"}, {"uses": 2, "status": "active"}),
            ({"uses": 2, "status": "active"}, {"uses": 3, "status": "used_up"}),
        )
    ]
    assert api.get("/api/v1/member/ann/benefit").json() == []  # no longer an active grant


def test_an_unlimited_grant_counts_every_use_and_stays_active(api, tenant, tiers):
    make_benefit(tenant, "wifi", tier=tiers["member"])
    register(api, "ann")
    grant = active_grant("ann", "wifi")
    bodies = [use(api, "ann", grant.pk).json() for _ in range(5)]
    assert [(b["uses"], b["remaining"], b["usage_limit"], b["status"], b["closed_at"]) for b in bodies] == [
        (n, None, None, "active", None) for n in range(1, 6)
    ]
    grant.refresh_from_db()
    assert (grant.uses, grant.status, grant.closed_at) == (5, "active", None)
    assert [m.data["remaining"] for m in OutboxMessage.objects.filter(type="benefit.used")] == [None] * 5


@pytest.mark.parametrize("how", ["expired", "past_expiry_not_yet_swept", "revoked"])
def test_an_expired_or_revoked_grant_cannot_be_used(api, tenant, tiers, how):
    make_benefit(tenant, "voucher", tier=tiers["member"], usage_limit=2)
    register(api, "ann")
    grant = active_grant("ann", "voucher")
    if how == "revoked":
        revoke_member_grant(tenant=tenant, grant=grant, actor="t", reason="fraud")
    else:
        MemberBenefit.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        if how == "expired":
            assert expire_grants(now=timezone.now()) == 1
    before = state()
    body = assert_problem(use(api, "ann", grant.pk), 409, "benefit_not_active")
    grant.refresh_from_db()
    expected = {
        "expired": "This grant is expired.",
        "revoked": "This grant is revoked.",
        "past_expiry_not_yet_swept": f"This grant expired at {grant.expires_at and grant.expires_at.isoformat()}.",
    }
    assert body["detail"] == expected[how]
    assert state() == before
    assert grant.uses == 0


def test_a_claim_with_an_idempotency_key_counts_once(api, tenant, tiers):
    make_benefit(tenant, "voucher", tier=tiers["member"], usage_limit=2)
    register(api, "ann")
    grant = active_grant("ann", "voucher")
    first = use(api, "ann", grant.pk, HTTP_IDEMPOTENCY_KEY="claim-1")
    again = use(api, "ann", grant.pk, HTTP_IDEMPOTENCY_KEY="claim-1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    grant.refresh_from_db()
    assert grant.uses == 1
    assert OutboxMessage.objects.filter(type="benefit.used").count() == 1
    second = use(api, "ann", grant.pk, HTTP_IDEMPOTENCY_KEY="claim-2")
    assert (second.status_code, second.json()["uses"], second.json()["status"]) == (200, 2, "used_up")


def test_another_members_or_tenants_grant_is_not_found(api, tenant, other_tenant, tiers, api_client_for):
    make_benefit(tenant, "voucher", tier=tiers["member"], usage_limit=2)
    register(api, "ann")
    register(api, "ben")
    theirs = hotel_ladder(other_tenant)[1]
    make_benefit(other_tenant, "voucher", tier=theirs["member"], usage_limit=2)
    register(api_client_for(other_tenant), "zed")
    bens, zeds = active_grant("ben", "voucher"), active_grant("zed", "voucher")
    before = state()
    assert_problem(use(api, "ann", bens.pk), 404, "benefit_grant_not_found")
    assert_problem(use(api, "ann", zeds.pk), 404, "benefit_grant_not_found")
    assert_problem(use(api, "ann", 987654), 404, "benefit_grant_not_found")
    assert_problem(use(api, "zed", zeds.pk), 404, "member_not_found")
    assert_problem(apply(api, "zed"), 404, "member_not_found")
    assert_problem(eligibility(api, "zed", "voucher"), 404, "member_not_found")
    assert state() == before


# --- authentication, scopes, malformed bodies -----------------------------------------------------
def test_scopes_of_the_grant_operations(api, tenant, tiers, api_client_for):
    make_benefit(tenant, "voucher", tier=tiers["member"], usage_limit=5)
    register(api, "ann")
    grant = active_grant("ann", "voucher")
    use_url = f"/api/v1/member/ann/benefit/{grant.pk}/use"
    apply_url = "/api/v1/member/ann/benefit/apply"
    eligibility_url = "/api/v1/member/ann/benefit/eligibility"
    body = {"benefit": "voucher"}
    before = state()
    for url in (use_url, apply_url, eligibility_url):
        assert_problem(APIClient().post(url, body, format="json"), 401, "not_authenticated")
        assert_problem(api_client_for(tenant, "").post(url, body, format="json"), 403, "insufficient_scope")
        assert_problem(
            api_client_for(tenant, "privilege:audit").post(url, body, format="json"), 403, "insufficient_scope"
        )
    reader = api_client_for(tenant, "privilege:read")
    assert_problem(reader.post(use_url), 403, "insufficient_scope")
    assert_problem(reader.post(apply_url), 403, "insufficient_scope")
    assert state() == before
    assert reader.post(eligibility_url, body, format="json").status_code == 200  # a read, though a POST
    writer = api_client_for(tenant, "privilege:write")
    assert writer.post(use_url).status_code == 200
    assert writer.post(apply_url).status_code == 200


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"benefit": ["This field is required."]}),
        ({"benefit": True}, {"benefit": ["A benefit id (integer) or code (string)."]}),
        ({"benefit": ""}, {"benefit": ["A benefit id (integer) or code (string)."]}),
        ({"benefit": [1]}, {"benefit": ["A benefit id (integer) or code (string)."]}),
        ({"benefit": None}, {"benefit": ["This field may not be null."]}),
        ({"benefit": "nope"}, {"benefit": ["No benefit 'nope'."]}),
        ({"benefit": 987654}, {"benefit": ["No benefit 987654."]}),
        ({"benefit": "theirs"}, {"benefit": ["No benefit 'theirs'."]}),
    ],
    ids=["missing", "boolean", "blank", "list", "null", "unknown-code", "unknown-id", "other-tenants-code"],
)
def test_eligibility_refuses_malformed_bodies(api, tenant, other_tenant, tiers, body, errors):
    make_benefit(other_tenant, "theirs")
    register(api, "ann")
    before = state()
    problem = assert_problem(
        api.post("/api/v1/member/ann/benefit/eligibility", body, format="json"), 422, "validation_error"
    )
    assert problem["errors"] == errors
    assert state() == before


def test_another_tenants_benefit_id_is_an_unknown_benefit(api, tenant, other_tenant, tiers):
    theirs = make_benefit(other_tenant, "theirs")
    register(api, "ann")
    problem = assert_problem(eligibility(api, "ann", theirs.pk), 422, "validation_error")
    assert problem["errors"] == {"benefit": [f"No benefit {theirs.pk}."]}


def test_malformed_json_is_refused_and_stores_nothing(api, tenant, tiers):
    make_benefit(tenant, "voucher", tier=tiers["member"], usage_limit=5)
    register(api, "ann")
    grant = active_grant("ann", "voucher")
    before = state()
    for path in (f"benefit/{grant.pk}/use", "benefit/apply", "benefit/eligibility"):
        response = api.generic("POST", f"/api/v1/member/ann/{path}", '{"benefit": ', content_type="application/json")
        assert_problem(response, 400, "malformed_json")
    assert state() == before


# --- re-evaluation on demand (apply) --------------------------------------------------------------
def test_apply_grants_what_is_missing_and_revokes_what_is_lost(api, tenant, tiers):
    register(api, "ann")
    make_benefit(tenant, "spa", tier=tiers["member"])  # mapped after ann registered: she lacks it
    make_benefit(tenant, "gift", tier=tiers["member"], total_quantity=0)
    response = apply(api, "ann")
    assert (response.status_code, response.json()) == (200, {"granted": ["spa"], "revoked": [], "exhausted": ["gift"]})
    assert apply(api, "ann").json() == {"granted": [], "revoked": [], "exhausted": ["gift"]}
    assert MemberBenefit.objects.filter(benefit__code="spa").count() == 1  # never duplicated
    unassign_tier_benefit(tenant=tenant, mapping=TierBenefitMapping.objects.get(benefit__code="spa"), actor="t")
    assert apply(api, "ann").json() == {"granted": [], "revoked": ["spa"], "exhausted": ["gift"]}
    assert list(MemberBenefit.objects.values_list("benefit__code", "status", "reason")) == [
        ("spa", "revoked", LOST_REASON)
    ]
    assert outbox("ann") == [
        ("member.created", None),
        ("tier.changed", None),
        ("benefit.applied", "spa"),
        ("benefit.revoked", "spa"),
    ]


def test_apply_and_use_refuse_an_erased_member(api, tenant, tiers):
    make_benefit(tenant, "wifi", tier=tiers["member"])
    register(api, "ann")
    make_benefit(tenant, "spa", tier=tiers["member"])
    Member.objects.filter(external_id="ann").update(status=Member.Status.ERASED)
    before = state()
    assert_problem(apply(api, "ann"), 409, "member_erased")
    assert_problem(use(api, "ann", active_grant("ann", "wifi").pk), 409, "member_erased")
    assert state() == before


def test_a_used_up_tier_benefit_returns_only_after_the_tier_is_lost_and_regained(api, tenant, tiers):
    """Promoted by an event, the voucher is used up: re-evaluation does not hand it out again while
    the member keeps Gold; demoted and promoted again, they get a new one."""
    make_benefit(tenant, "voucher", tier=tiers["gold"], usage_limit=1)
    register(api, "ann")
    assert api.post("/api/v1/member/ann/event", stay("s1"), format="json").json()["benefits"] == {
        "granted": ["voucher"],
        "revoked": [],
    }
    first = active_grant("ann", "voucher")
    assert use(api, "ann", first.pk).json()["status"] == "used_up"
    assert apply(api, "ann").json() == {"granted": [], "revoked": [], "exhausted": []}
    assert [r["code"] for r in eligibility(api, "ann", "voucher").json()["reasons"]] == ["already_received"]
    move(api, "ann", "platinum")  # still entitled (inherited): still nothing new
    assert MemberBenefit.objects.count() == 1
    move(api, "ann", "silver")  # lost: nothing to revoke, the grant is used up
    assert [r["code"] for r in eligibility(api, "ann", "voucher").json()["reasons"]] == ["tier_too_low"]
    move(api, "ann", "gold")
    second = active_grant("ann", "voucher")
    assert list(MemberBenefit.objects.order_by("pk").values_list("pk", "status", "uses")) == [
        (first.pk, "used_up", 1),
        (second.pk, "active", 0),
    ]
    assert outbox("ann") == [
        ("member.created", None),
        ("tier.changed", None),  # default tier
        ("tier.changed", None),  # the event: member → gold
        ("benefit.applied", "voucher"),
        ("benefit.used", "voucher"),
        ("tier.changed", None),  # gold → platinum
        ("tier.changed", None),  # platinum → silver
        ("tier.changed", None),  # silver → gold
        ("benefit.applied", "voucher"),
    ]


def test_a_tier_benefit_revoked_by_hand_stays_revoked_while_the_tier_is_held(api, tenant, tiers):
    make_benefit(tenant, "lounge", tier=tiers["gold"])
    register(api, "ann")
    move(api, "ann", "gold")
    revoke_member_grant(tenant=tenant, grant=active_grant("ann", "lounge"), actor="t", reason="abuse")
    assert apply(api, "ann").json() == {"granted": [], "revoked": [], "exhausted": []}
    move(api, "ann", "platinum")
    assert not MemberBenefit.objects.filter(status="active").exists()
    move(api, "ann", "member")
    move(api, "ann", "gold")
    assert list(MemberBenefit.objects.order_by("pk").values_list("status", "reason")) == [
        ("revoked", "abuse"),
        ("active", "tier gold"),
    ]


def test_a_benefit_revoked_because_the_tier_was_lost_returns_with_the_tier(api, tenant, tiers):
    make_benefit(tenant, "lounge", tier=tiers["gold"])
    register(api, "ann")
    move(api, "ann", "gold")
    move(api, "ann", "silver")
    move(api, "ann", "gold")
    assert list(MemberBenefit.objects.order_by("pk").values_list("status", "reason")) == [
        ("revoked", LOST_REASON),
        ("active", "tier gold"),
    ]


def test_an_expired_temporary_tier_benefit_is_not_granted_again(api, tenant, tiers):
    make_benefit(tenant, "gift", tier=tiers["member"], lifetime="temporary", duration_days=30)
    register(api, "ann")
    grant = active_grant("ann", "gift")
    assert grant.expires_at == grant.granted_at + timedelta(days=30)
    assert expire_grants(now=grant.expires_at) == 1
    assert apply(api, "ann").json() == {"granted": [], "revoked": [], "exhausted": []}
    (reason,) = eligibility(api, "ann", "gift").json()["reasons"]
    assert reason == {
        "code": "already_received",
        "detail": "The member's grant of it is expired and they have held a tier giving it since: "
        "it is granted again only after that tier is lost and regained.",
    }


# --- eligibility ----------------------------------------------------------------------------------
def test_eligibility_through_the_api(api, tenant, tiers):
    late = make_benefit(tenant, "late", tier=tiers["gold"])
    make_benefit(
        tenant,
        "vip-desk",
        tier=tiers["member"],
        lifetime="conditional",
        criteria=[{"metric": "attribute:vip", "operator": "eq", "value": True}],
    )
    register(api, "ann")
    make_benefit(tenant, "spa", tier=tiers["member"])  # mapped after registration
    make_benefit(tenant, "gift", tier=tiers["member"], total_quantity=0)
    make_benefit(tenant, "loose")  # mapped to no tier

    def reasons(benefit):
        response = eligibility(api, "ann", benefit)
        assert response.status_code == 200, response.content
        return response.json()

    assert reasons("spa") == {"benefit": "spa", "eligible": True, "reasons": [], "tier": "member", "via": []}
    too_low = {
        "benefit": "late",
        "eligible": False,
        "reasons": [{"code": "tier_too_low", "detail": "Given from gold (rank 3); the member holds member."}],
        "tier": None,
        "via": [],
    }
    assert reasons("late") == too_low
    assert reasons(late.pk) == too_low  # by id
    assert [r["code"] for r in reasons("vip-desk")["reasons"]] == ["criteria_not_met"]
    assert [r["code"] for r in reasons("gift")["reasons"]] == ["exhausted"]
    assert [r["code"] for r in reasons("loose")["reasons"]] == ["not_mapped"]
    move(api, "ann", "gold")
    assert reasons("late") == {
        "benefit": "late",
        "eligible": False,
        "reasons": [{"code": "already_granted", "detail": "The member holds an active grant of it from their tier."}],
        "tier": "gold",
        "via": [],
    }
    assert (
        AuditEntry.objects.filter(action__startswith="benefit.")
        .exclude(action="benefit.created")
        .filter(member_id="ann")
        .count()
        == MemberBenefit.objects.count()
    )  # eligibility itself writes nothing


# The engine's rule table: hotel member 11 < silver 12 < gold 13 < platinum 14; card classic 21.
NOW = datetime.fromisoformat("2026-03-01T10:00:00+07:00")
HOTEL, CARD = 1, 2
TIERS = {11: (HOTEL, 1, "member"), 12: (HOTEL, 2, "silver"), 13: (HOTEL, 3, "gold"), 14: (HOTEL, 4, "platinum")}
TIERS[21] = (CARD, 1, "classic")


def held(*tier_ids):
    return [HeldTier(t, TIERS[t][0], TIERS[t][1], TIERS[t][2]) for t in tier_ids]


def mapping(tier_id, benefit_id, inheritable=True):
    return TierMappingSpec(tier_id, TIERS[tier_id][0], TIERS[tier_id][1], benefit_id, inheritable, TIERS[tier_id][2])


def spec(benefit_id, code="b", **fields):
    return BenefitSpec(id=benefit_id, code=code, **fields)


ELIGIBILITY_TABLE = [
    # id, catalog, mappings, held, keyword arguments, expected (eligible, reason codes, tier)
    ("own-tier", [spec(1)], [mapping(13, 1)], held(13), {}, (True, [], "gold")),
    ("inherited", [spec(1)], [mapping(12, 1)], held(14), {}, (True, [], "silver")),
    ("bundle", [spec(1, component_ids=(2,)), spec(2, "c")], [mapping(13, 1)], held(13), {}, (False, ["bundle"], None)),
    ("template", [spec(1, is_template=True)], [mapping(13, 1)], held(13), {}, (False, ["template"], "gold")),
    ("inactive", [spec(1, active=False)], [mapping(13, 1)], held(13), {}, (False, ["inactive"], "gold")),
    (
        "not-yet",
        [spec(1, valid_from=NOW + timedelta(days=1))],
        [mapping(13, 1)],
        held(13),
        {},
        (False, ["outside_validity"], "gold"),
    ),
    ("over", [spec(1, valid_until=NOW)], [mapping(13, 1)], held(13), {}, (False, ["outside_validity"], "gold")),
    ("not-mapped", [spec(1)], [], held(13), {}, (False, ["not_mapped"], None)),
    ("other-tier-type", [spec(1)], [mapping(21, 1)], held(13), {}, (False, ["not_mapped"], None)),
    ("tier-too-low", [spec(1)], [mapping(13, 1)], held(12), {}, (False, ["tier_too_low"], None)),
    (
        "not-inheritable",
        [spec(1)],
        [mapping(12, 1, inheritable=False)],
        held(13),
        {},
        (False, ["not_inheritable"], None),
    ),
    (
        "criteria-not-met",
        [spec(1, lifetime="conditional", criteria=("x",))],
        [mapping(13, 1)],
        held(13),
        {"criteria_hold": lambda criteria: False},
        (False, ["criteria_not_met"], "gold"),
    ),
    (
        "exclusive-group-lost",
        [
            spec(1, "room", exclusive_group="upgrade", priority=5),
            spec(2, "suite", exclusive_group="upgrade", priority=10),
        ],
        [mapping(12, 1), mapping(14, 2)],
        held(14),
        {},
        (False, ["exclusive_group_lost"], "silver"),
    ),
    (
        "already-granted",
        [spec(1)],
        [mapping(13, 1)],
        held(13),
        {"active_grant": True},
        (False, ["already_granted"], "gold"),
    ),
    (
        "already-received",
        [spec(1)],
        [mapping(13, 1)],
        held(13),
        {"closed_grant_status": "used_up"},
        (False, ["already_received"], "gold"),
    ),
    ("exhausted", [spec(1)], [mapping(13, 1)], held(13), {"exhausted": True}, (False, ["exhausted"], "gold")),
    (
        "several",
        [spec(1, is_template=True, valid_until=NOW)],
        [mapping(13, 1)],
        held(12),
        {"exhausted": True},
        (False, ["template", "outside_validity", "tier_too_low", "exhausted"], None),
    ),
    (
        "too-low-and-not-inherited",
        [spec(1)],
        [mapping(11, 1, inheritable=False), mapping(14, 1)],
        held(13),
        {},
        (False, ["tier_too_low", "not_inheritable"], None),
    ),
]


@pytest.mark.parametrize(
    ("catalog", "mappings", "tiers_held", "kwargs", "expected"),
    [row[1:] for row in ELIGIBILITY_TABLE],
    ids=[row[0] for row in ELIGIBILITY_TABLE],
)
def test_eligibility_reasons(catalog, mappings, tiers_held, kwargs, expected):
    verdict = benefit_eligibility(
        benefit_id=1, catalog={b.id: b for b in catalog}, mappings=mappings, held=tiers_held, now=NOW, **kwargs
    )
    assert (verdict.eligible, [r.code for r in verdict.reasons], verdict.source_ref) == expected


def test_the_table_covers_every_reason():
    assert {code for row in ELIGIBILITY_TABLE for code in row[-1][1]} == set(ELIGIBILITY_REASONS)


def test_reason_details_name_what_decides():
    def details(catalog, mappings, tiers_held):
        verdict = benefit_eligibility(
            benefit_id=1, catalog={b.id: b for b in catalog}, mappings=mappings, held=tiers_held, now=NOW
        )
        return [r.detail for r in verdict.reasons]

    room = spec(1, "room", exclusive_group="upgrade", priority=5)
    suite = spec(2, "suite", exclusive_group="upgrade", priority=10)
    assert details([room, suite], [mapping(12, 1), mapping(14, 2)], held(14)) == [
        "Exclusive group 'upgrade': suite (priority 10) wins."
    ]
    assert details([spec(1)], [mapping(12, 1, inheritable=False)], held(14)) == [
        "Given by silver only (not inherited by higher tiers); the member holds platinum."
    ]
    assert details([spec(1, component_ids=(2, 3)), spec(2, "a"), spec(3, "b")], [], held(11)) == [
        "A bundle is granted as its components (a, b); ask about them."
    ]


def test_eligible_means_the_engine_would_grant_it():
    """Without grants or quantities in the way, ``eligible`` is exactly membership of tier_benefits()."""
    catalog = {
        1: spec(1, "late"),
        2: spec(2, "room", exclusive_group="upgrade", priority=5),
        3: spec(3, "suite", exclusive_group="upgrade", priority=10),
        4: spec(4, "wifi", valid_until=NOW),
        5: spec(5, "desk", lifetime="conditional", criteria=("x",)),
        6: spec(6, "old", is_template=True),
    }
    mappings = [mapping(13, 1), mapping(12, 2), mapping(14, 3), mapping(11, 4), mapping(12, 5), mapping(11, 6, False)]
    for tier_id in (11, 12, 13, 14, 21):
        granted = tier_benefits(catalog=catalog, mappings=mappings, held=held(tier_id), now=NOW, criteria_hold=bool)
        for benefit_id in catalog:
            verdict = benefit_eligibility(
                benefit_id=benefit_id,
                catalog=catalog,
                mappings=mappings,
                held=held(tier_id),
                now=NOW,
                criteria_hold=bool,
            )
            assert verdict.eligible == (benefit_id in granted), (tier_id, benefit_id, verdict)


def test_entitled_throughout():
    catalog = {1: spec(1, "late")}
    mappings = [mapping(13, 1)]
    assert entitled_throughout(benefit_id=1, catalog=catalog, mappings=mappings, states=[], now=NOW)
    assert entitled_throughout(benefit_id=1, catalog=catalog, mappings=mappings, states=[held(13), held(14)], now=NOW)
    assert not entitled_throughout(
        benefit_id=1, catalog=catalog, mappings=mappings, states=[held(13), held(12), held(13)], now=NOW
    )
    assert not entitled_throughout(benefit_id=9, catalog=catalog, mappings=mappings, states=[], now=NOW)


# --- expiry ---------------------------------------------------------------------------------------
def test_expiry_closes_exactly_the_due_grants_once(tenant, other_tenant):
    now = timezone.now()
    ours = Benefit.objects.create(tenant=tenant, code="voucher", name="Voucher")
    theirs = Benefit.objects.create(tenant=other_tenant, code="voucher", name="Voucher")
    ann, ben = MemberFactory(tenant=tenant, external_id="ann"), MemberFactory(tenant=tenant, external_id="ben")
    zed = MemberFactory(tenant=other_tenant, external_id="zed")

    def grant(member, benefit, expires_at, source, status="active"):
        return MemberBenefit.objects.create(
            tenant=member.tenant,
            member=member,
            benefit=benefit,
            source=source,
            source_ref="x",
            granted_at=now - timedelta(days=30),
            expires_at=expires_at,
            status=status,
        )

    due = [
        grant(ann, ours, now - timedelta(days=1), "manual"),
        grant(ann, ours, now - timedelta(hours=1), "campaign"),
        grant(ben, ours, now, "manual"),  # due at exactly now
        grant(zed, theirs, now - timedelta(seconds=1), "manual"),
    ]
    later = grant(ann, ours, now + timedelta(seconds=1), "tier")
    forever = grant(ben, ours, None, "tier")
    revoked = grant(zed, theirs, now - timedelta(days=2), "tier", status="revoked")

    assert expire_grants(now=now) == 4
    statuses = dict(MemberBenefit.objects.values_list("pk", "status"))
    assert statuses == {
        **{g.pk: "expired" for g in due},
        later.pk: "active",
        forever.pk: "active",
        revoked.pk: "revoked",
    }
    for g in due:
        g.refresh_from_db()
        assert g.closed_at == g.expires_at
    messages = OutboxMessage.objects.filter(type="benefit.expired").order_by("member_id", "sequence")
    assert [(m.tenant_id, m.member_id, m.data["grant"], m.data["benefit"], m.data["source"]) for m in messages] == [
        (tenant.pk, "ann", due[0].pk, "voucher", "manual"),
        (tenant.pk, "ann", due[1].pk, "voucher", "campaign"),
        (tenant.pk, "ben", due[2].pk, "voucher", "manual"),
        (other_tenant.pk, "zed", due[3].pk, "voucher", "manual"),
    ]
    assert [m.occurred_at for m in messages] == [g.expires_at for g in due]
    audits = AuditEntry.objects.filter(action="benefit.expired").order_by("id")
    assert [(a.tenant_id, a.target_id, a.member_id, a.actor) for a in audits] == [
        (g.tenant_id, str(g.pk), g.member.external_id, "system:expire_grants") for g in due
    ]
    again = state()
    assert expire_grants(now=now) == 0  # idempotent
    assert state() == again


def test_expiry_takes_at_most_limit_grants_per_call(tenant):
    now = timezone.now()
    voucher = Benefit.objects.create(tenant=tenant, code="voucher", name="Voucher")
    for i in range(3):
        MemberBenefit.objects.create(
            tenant=tenant,
            member=MemberFactory(tenant=tenant),
            benefit=voucher,
            source="manual",
            granted_at=now - timedelta(days=2),
            expires_at=now - timedelta(minutes=i),
        )
    assert [expire_grants(now=now, limit=2) for _ in range(3)] == [2, 1, 0]
    assert MemberBenefit.objects.filter(status="expired").count() == 3
    assert OutboxMessage.objects.filter(type="benefit.expired").count() == 3


def test_the_periodic_task_expires_due_grants(tenant):
    voucher = Benefit.objects.create(tenant=tenant, code="voucher", name="Voucher")
    MemberBenefit.objects.create(
        tenant=tenant,
        member=MemberFactory(tenant=tenant),
        benefit=voucher,
        source="manual",
        granted_at=timezone.now() - timedelta(days=2),
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    kwargs = json.loads(json.dumps({"limit": 100}))  # arguments as they travel
    assert expire_due_grants.name == "benefits.expire_grants"
    assert expire_due_grants.apply(kwargs=kwargs).get() == 1
    assert expire_due_grants.apply(kwargs=kwargs).get() == 0
    assert MemberBenefit.objects.get().status == "expired"


# --- admin: grants on the member page, "Revoke…" ---------------------------------------------------
@pytest.fixture
def staff(tenant):
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["tiers", "members"]))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def lounge_grant(api, tenant, tiers):
    make_benefit(tenant, "lounge", tier=tiers["member"], usage_limit=3)
    register(api, "ann")
    return active_grant("ann", "lounge")


def revoke_url(grant):
    return reverse("admin:members_member_revoke_grant", args=[grant.member_id, grant.pk])


def test_member_page_lists_grants_with_a_revoke_link(client, staff, lounge_grant):
    client.force_login(staff)
    page = client.get(reverse("admin:members_member_change", args=[lounge_grant.member_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<table class="benefit-grants">' in html
    assert "<td>lounge</td><td>tier: member</td><td>active</td>" in html
    assert "<td>0 / 3</td>" in html
    assert f'href="{revoke_url(lounge_grant)}"' in html


def test_revoke_needs_a_reason_goes_through_the_service_and_is_audited(client, staff, lounge_grant):
    client.force_login(staff)
    form_page = client.get(revoke_url(lounge_grant))
    assert form_page.status_code == 200
    html = form_page.content.decode()
    assert '<form method="post" id="revoke_grant_form" novalidate>' in html
    assert '<input type="submit" value="Revoke" class="default" name="_save">' in html
    assert "&rsaquo; Revoke benefit" in html
    before = state()
    for blank in ("", "   "):
        page = client.post(revoke_url(lounge_grant), {"reason": blank})
        assert page.status_code == 200
        assert page.context["form"].errors == {"reason": ["This field is required."]}
    assert state() == before

    response = client.post(revoke_url(lounge_grant), {"reason": "  shared the lounge card  "})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:members_member_change", args=[lounge_grant.member_id])
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"ann: lounge (grant {lounge_grant.pk}) revoked."]
    lounge_grant.refresh_from_db()
    assert (lounge_grant.status, lounge_grant.reason) == ("revoked", "shared the lounge card")
    entry = AuditEntry.objects.get(action="benefit.rolled_back")
    assert (entry.actor, entry.member_id, entry.target_id, entry.reason, entry.before, entry.after) == (
        "user:anna",
        "ann",
        str(lounge_grant.pk),
        "shared the lounge card",
        {"status": "active"},
        {"status": "revoked"},
    )
    message = OutboxMessage.objects.get(type="benefit.revoked")
    assert (message.member_id, message.data) == (
        "ann",
        {"grant": lounge_grant.pk, "benefit": "lounge", "source": "tier", "reason": "shared the lounge card"},
    )

    after = state()
    page = client.post(revoke_url(lounge_grant), {"reason": "again"})
    assert page.status_code == 200
    assert page.context["form"].non_field_errors() == ["This grant is revoked; only an active grant can be revoked."]
    assert state() == after
    page = client.get(reverse("admin:members_member_change", args=[lounge_grant.member_id]))
    assert revoke_url(lounge_grant) not in page.content.decode()  # no link on a closed grant


def test_revoke_is_scoped_to_the_member_and_the_tenant(
    client, staff, api, tenant, other_tenant, lounge_grant, api_client_for
):
    register(api, "ben")
    bens = active_grant("ben", "lounge")
    theirs = hotel_ladder(other_tenant)[1]
    make_benefit(other_tenant, "lounge", tier=theirs["member"])
    register(api_client_for(other_tenant), "zed")
    zeds = active_grant("zed", "lounge")
    client.force_login(staff)
    before = state()
    ann = lounge_grant.member_id
    for url in (
        reverse("admin:members_member_revoke_grant", args=[ann, bens.pk]),  # another member's grant
        reverse("admin:members_member_revoke_grant", args=[ann, zeds.pk]),  # another tenant's grant
        reverse("admin:members_member_revoke_grant", args=[zeds.member_id, zeds.pk]),  # another tenant's member
    ):
        assert client.post(url, {"reason": "x"}).status_code == 404
    assert state() == before


def test_revoke_needs_change_permission(client, tenant, lounge_grant):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_member"))
    TenantMembershipFactory(user=viewer, tenant=tenant)
    client.force_login(viewer)
    page = client.get(reverse("admin:members_member_change", args=[lounge_grant.member_id]))
    assert page.status_code == 200
    assert "<td>lounge</td>" in page.content.decode()
    assert revoke_url(lounge_grant) not in page.content.decode()
    before = state()
    assert client.post(revoke_url(lounge_grant), {"reason": "x"}).status_code == 403
    assert state() == before


# --- PostgreSQL: concurrency ----------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_claims_of_a_three_use_grant_succeed_exactly_three_times(api_client_for):
    from events.registration import register_member
    from members.services import Registration

    tenant = TenantFactory(slug="claims")
    _, tiers, _ = hotel_ladder(tenant)
    make_benefit(tenant, "lounge", tier=tiers["member"], usage_limit=3)
    register_member(tenant=tenant, registration=Registration(external_id="ann"), actor="t")
    grant = MemberBenefit.objects.get()
    clients = [api_client_for(tenant) for _ in range(10)]

    def claim(i):
        response = clients[i].post(f"/api/v1/member/ann/benefit/{grant.pk}/use")
        return response.status_code, json.loads(response.content).get("code")

    results = race(10, claim)
    assert sorted(results, key=str) == sorted([(200, None)] * 3 + [(409, "benefit_used_up")] * 7, key=str)
    grant.refresh_from_db()
    assert (grant.uses, grant.status) == (3, "used_up")
    used = OutboxMessage.objects.filter(type="benefit.used").order_by("sequence")
    assert [(m.data["uses"], m.data["remaining"], m.data["status"]) for m in used] == [
        (1, 2, "active"),
        (2, 1, "active"),
        (3, 0, "used_up"),
    ]
    assert AuditEntry.objects.filter(action="benefit.used").count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_expire_each_grant_exactly_once():
    tenant = TenantFactory(slug="expiry")
    now = timezone.now()
    voucher = Benefit.objects.create(tenant=tenant, code="voucher", name="Voucher")
    grants = [
        MemberBenefit.objects.create(
            tenant=tenant,
            member=MemberFactory(tenant=tenant),
            benefit=voucher,
            source="manual",
            granted_at=now - timedelta(days=2),
            expires_at=now - timedelta(minutes=1),
        )
        for _ in range(40)
    ]
    results = race(2, lambda i: expire_grants(now=now))
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 40
    assert set(MemberBenefit.objects.values_list("status", flat=True)) == {"expired"}
    expired = OutboxMessage.objects.filter(type="benefit.expired")
    assert sorted(m.data["grant"] for m in expired) == sorted(g.pk for g in grants)
    assert AuditEntry.objects.filter(action="benefit.expired").count() == 40
    assert expire_grants(now=now) == 0

"""Tier benefits follow tier changes in the same transaction (DOMAIN §5): granted, revoked unless
retained, never duplicated; limited quantities never oversold."""

import pytest

from benefits.models import Benefit, MemberBenefit, TierBenefitMapping
from members.models import Member
from outbox.models import OutboxMessage
from tests.concurrency import race
from tests.factories import TenantFactory, hotel_ladder

pytestmark = pytest.mark.django_db
TIER_URL = "/api/v1/member/ann/tier"


def _benefit(tenant, tier, code, **fields):
    benefit = Benefit.objects.create(tenant=tenant, code=code, name=code.title(), **fields)
    TierBenefitMapping.objects.create(tenant=tenant, tier=tier, benefit=benefit)
    tenant.bump_config_version()
    return benefit


@pytest.fixture
def program(tenant):
    _, tiers, _ = hotel_ladder(tenant)
    return tiers


def _active(member_id: str) -> list[str]:
    return sorted(
        MemberBenefit.objects.filter(member__external_id=member_id, status="active").values_list(
            "benefit__code", flat=True
        )
    )


def test_registration_grants_the_default_tiers_benefits(api, tenant, program):
    _benefit(tenant, program["member"], "welcome-drink")
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    assert _active("ann") == ["welcome-drink"]
    assert OutboxMessage.objects.filter(type="benefit.applied", member_id="ann").count() == 1


def test_promotion_grants_and_demotion_revokes_unless_retained(api, tenant, program):
    _benefit(tenant, program["silver"], "late-checkout")  # inheritable: silver and up
    _benefit(tenant, program["gold"], "voucher", retain_on_loss=True)
    _benefit(tenant, program["gold"], "lounge")
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    assert _active("ann") == []
    body = {"tier_type": program["gold"].tier_type.code, "tier": "gold", "reason": "VIP"}
    api.put(TIER_URL, body, format="json")
    assert _active("ann") == ["late-checkout", "lounge", "voucher"]
    sources = dict(MemberBenefit.objects.filter(status="active").values_list("benefit__code", "source_ref"))
    assert sources == {"late-checkout": "silver", "lounge": "gold", "voucher": "gold"}
    api.put(TIER_URL, body | {"tier": "platinum"}, format="json")  # keeps all, grants nothing twice
    assert MemberBenefit.objects.count() == 3
    api.put(TIER_URL, body | {"tier": "silver"}, format="json")
    assert _active("ann") == ["late-checkout", "voucher"]
    revoked = OutboxMessage.objects.filter(type="benefit.revoked")
    assert [m.data["benefit"] for m in revoked] == ["lounge"]
    api.put(TIER_URL, body | {"tier": "member"}, format="json")  # the voucher is kept
    assert _active("ann") == ["voucher"]
    # Every message of the member, in sequence order: grants follow the tier change that caused them.
    messages = OutboxMessage.objects.filter(member_id="ann").order_by("sequence")
    assert [(m.sequence, m.type, m.data.get("benefit")) for m in messages] == [
        (1, "member.created", None),
        (2, "tier.changed", None),  # default tier
        (3, "tier.changed", None),  # → gold
        (4, "benefit.applied", "late-checkout"),  # inherited from silver; grants in benefit id order
        (5, "benefit.applied", "voucher"),
        (6, "benefit.applied", "lounge"),
        (7, "tier.changed", None),  # → platinum: nothing granted twice
        (8, "tier.changed", None),  # → silver
        (9, "benefit.revoked", "lounge"),  # the voucher is retained
        (10, "tier.changed", None),  # → member
        (11, "benefit.revoked", "late-checkout"),
    ]
    assert [(m.data["from"], m.data["to"]) for m in messages if m.type == "tier.changed"] == [
        (None, "member"),
        ("member", "gold"),
        ("gold", "platinum"),
        ("platinum", "silver"),
        ("silver", "member"),
    ]


def test_event_result_reports_granted_benefits(api, tenant, program):
    _benefit(tenant, program["gold"], "lounge")
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    from tests.events.test_ingestion import stay

    body = api.post("/api/v1/member/ann/event", stay(), format="json").json()
    assert body["benefits"] == {"granted": ["lounge"], "revoked": []}


def test_limited_quantity_is_first_come_and_the_result_says_so(api, tenant, program):
    _benefit(tenant, program["gold"], "first-100", total_quantity=1)
    for external_id in ("ann", "ben"):
        api.post("/api/v1/member", {"external_id": external_id}, format="json")
    from tests.events.test_ingestion import stay

    first = api.post("/api/v1/member/ann/event", stay("s1"), format="json").json()
    second = api.post("/api/v1/member/ben/event", stay("s2"), format="json").json()
    assert first["benefits"] == {"granted": ["first-100"], "revoked": []}
    assert second["benefits"] == {"granted": [], "revoked": [], "exhausted": ["first-100"]}
    assert Benefit.objects.get().granted_count == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_300_members_qualifying_at_once_get_exactly_100():
    from events.registration import register_member
    from members.services import Registration
    from tiers.assignments import change_member_tier

    tenant = TenantFactory(slug="rush")
    _, tiers, _ = hotel_ladder(tenant)
    _benefit(tenant, tiers["gold"], "first-100", total_quantity=100)
    members = [
        register_member(tenant=tenant, registration=Registration(external_id=f"m{i}"), actor="t")[0] for i in range(300)
    ]
    results = race(
        30,
        lambda i: [
            change_member_tier(tenant=tenant, member=m, tier=tiers["gold"], reason="rush", actor="t")
            for m in members[i * 10 : (i + 1) * 10]
        ],
    )
    assert all(isinstance(r, list) for r in results), [r for r in results if not isinstance(r, list)][:1]
    assert MemberBenefit.objects.filter(benefit__code="first-100").count() == 100
    assert Benefit.objects.get(code="first-100").granted_count == 100
    assert Member.objects.filter(tenant=tenant).count() == 300


def test_member_benefits_lists_active_grants(api, tenant, program):
    _benefit(tenant, program["gold"], "lounge", usage_limit=3, value={"visits": 3})
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    assert api.get("/api/v1/member/ann/benefit").json() == []
    api.put(TIER_URL, {"tier_type": program["gold"].tier_type.code, "tier": "gold", "reason": "VIP"}, format="json")
    (grant,) = api.get("/api/v1/member/ann/benefit").json()
    assert {k: grant[k] for k in ("benefit", "source", "source_ref", "status", "uses", "usage_limit", "value")} == {
        "benefit": "lounge",
        "source": "tier",
        "source_ref": "gold",
        "status": "active",
        "uses": 0,
        "usage_limit": 3,
        "value": {"visits": 3},
    }
    api.put(TIER_URL, {"tier_type": program["gold"].tier_type.code, "tier": "member", "reason": "x"}, format="json")
    assert api.get("/api/v1/member/ann/benefit").json() == []


def test_a_sold_out_benefit_held_back_before_the_change_is_not_reported_again(api, tenant, program):
    """The demo's welcome gift: mapped to the entry tier, inherited above it, first come first served.
    A member who came too late is not told "exhausted" on every promotion (issue 11)."""
    from tests.events.test_ingestion import stay

    _benefit(tenant, program["member"], "first-1", total_quantity=1)
    for external_id in ("ann", "ben"):
        assert api.post("/api/v1/member", {"external_id": external_id}, format="json").status_code == 201
    assert (_active("ann"), _active("ben")) == (["first-1"], [])
    promoted = api.post("/api/v1/member/ben/event", stay("s1"), format="json").json()
    assert promoted["tier_changes"][0]["to"] == "gold"
    assert promoted["benefits"] == {"granted": [], "revoked": []}
    assert Benefit.objects.get(code="first-1").granted_count == 1

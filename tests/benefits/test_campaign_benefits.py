"""Campaign benefits (DOMAIN §5): an event of a campaign grants the campaign's mapped benefits whose
criteria hold, in the event's transaction, once per member and campaign (benefits/campaigns.py)."""

import pytest

from benefits.models import Benefit, CampaignBenefitMapping, MemberBenefit
from members.models import Member
from outbox.models import OutboxMessage
from tests.events.test_ingestion import stay
from tests.factories import hotel_ladder

pytestmark = pytest.mark.django_db
URL = "/api/v1/member/{}/event"


@pytest.fixture
def program(api, tenant):
    hotel_ladder(tenant)
    for external_id in ("ann", "ben"):
        api.post("/api/v1/member", {"external_id": external_id}, format="json")


def _map(tenant, campaign, code, criteria=(), **fields):
    benefit = Benefit.objects.create(tenant=tenant, code=code, name=code.title(), **fields)
    CampaignBenefitMapping.objects.create(
        tenant=tenant, campaign_code=campaign, benefit=benefit, criteria=list(criteria)
    )
    tenant.bump_config_version()
    return benefit


def _campaign_grants(member_id):
    return sorted(
        MemberBenefit.objects.filter(member__external_id=member_id, source="campaign").values_list(
            "benefit__code", "source_ref", "status"
        )
    )


def test_a_campaign_event_grants_the_campaign_benefits_once(api, tenant, program):
    _map(tenant, "SONGKRAN", "water-gun")
    _map(tenant, "OTHER", "umbrella")
    first = api.post(URL.format("ann"), stay("s1", nights=1, campaign_code="SONGKRAN"), format="json").json()
    assert first["benefits"] == {"granted": ["water-gun"], "revoked": []}
    assert _campaign_grants("ann") == [("water-gun", "SONGKRAN", "active")]
    again = api.post(URL.format("ann"), stay("s2", nights=1, campaign_code="SONGKRAN"), format="json").json()
    assert again["benefits"] == {"granted": [], "revoked": []}
    MemberBenefit.objects.update(status="used_up")  # even once used, the campaign does not give it again
    api.post(URL.format("ann"), stay("s3", nights=1, campaign_code="SONGKRAN"), format="json")
    assert MemberBenefit.objects.filter(source="campaign").count() == 1
    plain = api.post(URL.format("ben"), stay("s4", nights=1), format="json").json()
    assert plain["benefits"] == {"granted": [], "revoked": []}
    applied = OutboxMessage.objects.filter(type="benefit.applied", data__source="campaign")
    assert [(m.member_id, m.data["benefit"], m.data["source_ref"]) for m in applied] == [
        ("ann", "water-gun", "SONGKRAN")
    ]


def test_criteria_are_judged_after_the_event_counts(api, tenant, program):
    criteria = [{"metric": "spend", "operator": "gte", "value": 400, "window_days": None}]
    _map(tenant, "BIGSPEND", "spa", criteria=criteria)
    small = api.post(URL.format("ann"), stay("s1", nights=1, campaign_code="BIGSPEND"), format="json").json()
    assert small["benefits"]["granted"] == []  # 250 spent so far
    big = api.post(URL.format("ann"), stay("s2", nights=1, campaign_code="BIGSPEND"), format="json").json()
    assert big["benefits"]["granted"] == ["spa"]  # 500 with this event


def test_bundles_expand_and_limited_quantities_run_out(api, tenant, program):
    one = Benefit.objects.create(tenant=tenant, code="voucher-a", name="A")
    two = Benefit.objects.create(tenant=tenant, code="voucher-b", name="B", total_quantity=1)
    bundle = _map(tenant, "PACK", "pack")
    bundle.components.set([one, two])
    tenant.bump_config_version()
    ann = api.post(URL.format("ann"), stay("s1", nights=1, campaign_code="PACK"), format="json").json()
    ben = api.post(URL.format("ben"), stay("s2", nights=1, campaign_code="PACK"), format="json").json()
    assert ann["benefits"] == {"granted": ["voucher-a", "voucher-b"], "revoked": []}
    assert ben["benefits"] == {"granted": ["voucher-a"], "revoked": [], "exhausted": ["voucher-b"]}
    assert _campaign_grants("ben") == [("voucher-a", "PACK", "active")]


def test_a_benefit_held_from_one_campaign_is_not_granted_again_by_another(api, tenant, program):
    gift = _map(tenant, "SPRING", "gift")
    CampaignBenefitMapping.objects.create(tenant=tenant, campaign_code="SUMMER", benefit=gift)
    api.post(URL.format("ann"), stay("s1", nights=1, campaign_code="SPRING"), format="json")
    summer = api.post(URL.format("ann"), stay("s2", nights=1, campaign_code="SUMMER"), format="json").json()
    assert summer["benefits"]["granted"] == []
    assert _campaign_grants("ann") == [("gift", "SPRING", "active")]


def test_refunds_and_inactive_members_get_nothing(api, tenant, program):
    _map(tenant, "SONGKRAN", "water-gun")
    api.post(URL.format("ann"), stay("s1", nights=1), format="json")
    refund = {
        "event_id": "r1",
        "source": "pos",
        "type": "refund",
        "occurred_at": stay()["occurred_at"],
        "amount": "10.00",
        "currency": "USD",
        "refund_of": "s1",
        "campaign_code": "SONGKRAN",
    }
    assert api.post(URL.format("ann"), refund, format="json").status_code == 201
    Member.objects.filter(external_id="ben").update(status=Member.Status.SUSPENDED)
    api.post(URL.format("ben"), stay("s2", nights=1, campaign_code="SONGKRAN"), format="json")
    assert MemberBenefit.objects.filter(source="campaign").count() == 0

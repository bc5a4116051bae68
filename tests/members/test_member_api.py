"""Member registration and profile API (DOMAIN §2, API.md)."""

import pytest

from audit.models import AuditEntry
from members.models import Member
from outbox.models import OutboxMessage
from tests.factories import MemberFactory, hotel_ladder
from tests.helpers import assert_problem
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db

URL = "/api/v1/member"
ANN = {
    "external_id": "u-1001",
    "name": "Ann Lee",
    "email": "ann@example.com",
    "mobile": "+66812345678",
    "attributes": {"country": "TH"},
}


@pytest.fixture
def ladders(tenant):
    hotel = hotel_ladder(tenant, code="hotel")
    partner = hotel_ladder(tenant, code="partner")
    return hotel, partner


def test_register_creates_member_with_default_tiers_audit_and_event(api, tenant, ladders):
    response = api.post(URL, ANN, format="json", HTTP_X_REQUEST_ID="reg-1")
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ANN} == ANN
    assert body["status"] == "active"
    assert body["iam_linked"] is False
    assert [(t["tier_type"], t["tier"], t["rank"], t["source"]) for t in body["tiers"]] == [
        ("hotel", "member", 1, "auto"),
        ("partner", "member", 1, "auto"),
    ]
    assert body["tiers"][0]["valid_until"] is None
    assert body["tiers"][0]["grace_until"] is None
    assert body["tiers"][0]["locked_until"] is None
    member = Member.objects.get()
    assert (member.tenant, member.external_id) == (tenant, "u-1001")
    assert MemberTierChange.objects.filter(member=member, from_tier=None, source="auto").count() == 2
    assert list(AuditEntry.objects.filter(action="member.registered").values_list("member_id", "correlation_id")) == [
        ("u-1001", "reg-1")
    ]
    messages = list(OutboxMessage.objects.order_by("sequence").values_list("type", "sequence", "member_id"))
    assert messages == [
        ("member.created", 1, "u-1001"),
        ("tier.changed", 2, "u-1001"),
        ("tier.changed", 3, "u-1001"),
    ]
    created = OutboxMessage.objects.get(type="member.created")
    assert "ann@example.com" not in str(created.data)  # no PII in emitted messages


def test_registration_is_idempotent_on_external_id(api, ladders):
    first = api.post(URL, ANN, format="json")
    again = api.post(URL, ANN, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Member.objects.count() == 1
    assert OutboxMessage.objects.filter(type="member.created").count() == 1
    assert MemberTierAssignment.objects.count() == 2


def test_registration_normalizes_before_comparing(api):
    api.post(URL, ANN, format="json")
    same = {**ANN, "email": "ANN@Example.com ", "mobile": "+66 81 234-5678"}
    assert api.post(URL, same, format="json").status_code == 200


@pytest.mark.parametrize("change", [{"name": "Ann B. Lee"}, {"email": "ann@other.com"}, {"attributes": {}}])
def test_conflicting_registration_is_409_and_changes_nothing(api, change):
    api.post(URL, ANN, format="json")
    assert_problem(api.post(URL, {**ANN, **change}, format="json"), 409, "member_conflict")
    member = Member.objects.get()
    assert (member.name, member.email, member.attributes) == ("Ann Lee", "ann@example.com", {"country": "TH"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "external_id"),
        ({"external_id": "   "}, "external_id"),
        ({"external_id": "a/b"}, "external_id"),
        ({"external_id": "x" * 201}, "external_id"),
        ({"external_id": "u-1", "email": "not-an-email"}, "email"),
        ({"external_id": "u-1", "mobile": "0812345678"}, "mobile"),
        ({"external_id": "u-1", "mobile": "+1234"}, "mobile"),
        ({"external_id": "u-1", "attributes": ["a"]}, "attributes"),
        ({"external_id": 12, "email": "a@b"}, "email"),
    ],
    ids=["missing", "blank", "slash", "too-long", "email", "mobile-local", "mobile-short", "attributes", "email-2"],
)
def test_invalid_registration_is_422_and_stores_nothing(api, body, field):
    response = api.post(URL, body, format="json")
    errors = assert_problem(response, 422, "validation_error")["errors"]
    assert field in errors
    assert Member.objects.count() == 0
    assert OutboxMessage.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_register_needs_write_scope(api_client_for, tenant):
    client = api_client_for(tenant, "privilege:read")
    assert_problem(client.post(URL, ANN, format="json"), 403, "insufficient_scope")
    assert Member.objects.count() == 0


def test_register_without_token_is_401(client):
    assert_problem(client.post(URL, ANN, content_type="application/json"), 401, "not_authenticated")


def test_same_external_id_in_two_tenants_are_two_members(api, api_client_for, other_tenant):
    assert api.post(URL, ANN, format="json").status_code == 201
    assert api_client_for(other_tenant).post(URL, {**ANN, "name": "Other Ann"}, format="json").status_code == 201
    assert Member.objects.count() == 2


def test_get_member(api, ladders):
    api.post(URL, ANN, format="json")
    body = api.get(f"{URL}/u-1001").json()
    assert body["external_id"] == "u-1001"
    assert [t["tier_type"] for t in body["tiers"]] == ["hotel", "partner"]


def test_member_ids_with_special_characters(api):
    weird = {"external_id": "auth0|5f7c8ec7c33c6c004bbafe82@x:y"}
    assert api.post(URL, weird, format="json").status_code == 201
    assert api.get(f"{URL}/auth0|5f7c8ec7c33c6c004bbafe82@x:y").json()["external_id"] == weird["external_id"]


def test_unknown_member_is_404_member_not_found(api):
    assert_problem(api.get(f"{URL}/nobody"), 404, "member_not_found")


def test_another_tenants_member_is_404(api, other_tenant):
    MemberFactory(tenant=other_tenant, external_id="theirs")
    assert_problem(api.get(f"{URL}/theirs"), 404, "member_not_found")
    assert api.get(URL).json()["count"] == 0


def test_list_filters(api, tenant, ladders):
    (hotel, tiers, _), _ = ladders
    for external_id in ("a", "b", "c"):
        api.post(URL, {"external_id": external_id, "email": f"{external_id}@x.com"}, format="json")
    Member.objects.filter(external_id="b").update(status="suspended")
    gold = tiers["gold"]
    MemberTierAssignment.objects.filter(member__external_id="c", tier_type=hotel).update(tier=gold)

    def ids(**params):
        return sorted(m["external_id"] for m in api.get(URL, params).json()["results"])

    assert ids() == ["a", "b", "c"]
    assert ids(status="suspended") == ["b"]
    assert ids(email="A@X.COM") == ["a"]
    assert ids(tier_type="hotel", tier="gold") == ["c"]
    assert ids(tier="member") == ["a", "b", "c"]  # partner ladder; members listed once each
    body = assert_problem(api.get(URL, {"status": "sleeping"}), 422, "validation_error")
    assert list(body["errors"]) == ["status"]


def test_list_query_count_does_not_grow_with_members(api, tenant, ladders, django_assert_max_num_queries):
    for i in range(15):
        api.post(URL, {"external_id": f"m{i}"}, format="json")
    with django_assert_max_num_queries(4):  # tenant lookup, count, page, prefetched tiers
        assert len(api.get(URL).json()["results"]) == 15

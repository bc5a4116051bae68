"""``POST /member/{memberId}/erase``: personal data blanked for good, in live rows and history."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEntry
from config.errors import Conflict
from members.models import Member, MemberEvent
from members.services import update_member_profile
from outbox.models import OutboxMessage
from tests.factories import MemberFactory
from tests.helpers import assert_problem, stay

pytestmark = pytest.mark.django_db

URL = "/api/v1/member/ann/erase"
PERSONAL = {"name": "Ann Lee", "email": "ann@example.com", "mobile": "+66812345678"}


@pytest.fixture
def ann(api, ladder):
    registered = api.post(
        "/api/v1/member", {"external_id": "ann", **PERSONAL, "attributes": {"country": "TH"}}, format="json"
    )
    assert registered.status_code == 201, registered.content
    member = Member.objects.get(external_id="ann")
    update_member_profile(tenant=member.tenant, member=member, changes={"name": "Ann L. Lee"}, actor="system")
    body = stay("s-1", attributes={"guest_email": "ann@example.com"})
    assert api.post("/api/v1/member/ann/event", body, format="json").status_code == 201
    published = api.post(
        "/api/v1/event/publish",
        {"type": "points.adjusted", "member_id": "ann", "data": {"note": "goodwill", "email": "ann@example.com"}},
        format="json",
    )
    assert published.status_code == 202, published.content
    return Member.objects.get(external_id="ann")


def test_erasure_blanks_the_profile_its_history_event_attributes_and_payloads(api, ann):
    response = api.post(URL, {"reason": "member's request of 2026-12-01"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["email"], body["mobile"], body["attributes"], body["status"]) == (
        "",
        None,
        "",
        {},
        "erased",
    )
    ann.refresh_from_db()
    assert (ann.name, ann.email, ann.mobile, ann.attributes, ann.status) == ("", "", "", {}, "erased")
    history = list(Member.history.filter(id=ann.pk).values_list("name", "email", "mobile", "attributes"))
    assert len(history) >= 2
    assert [row for row in history if row != ("", "", "", {})] == []
    assert list(MemberEvent.objects.filter(member=ann).values_list("attributes", flat=True)) == [{}]
    adjusted = OutboxMessage.objects.get(member_id="ann", type="points.adjusted")
    assert adjusted.data == {"note": "goodwill"}
    erased = OutboxMessage.objects.get(type="member.erased")
    assert (erased.member_id, erased.data) == ("ann", {"external_id": "ann"})
    entry = AuditEntry.objects.get(action="member.erased")
    assert (entry.member_id, entry.reason, entry.before, entry.after) == (
        "ann",
        "member's request of 2026-12-01",
        {"status": "active"},
        {"status": "erased"},
    )
    # nothing personal anywhere in what the service still holds about the member
    export = api.get("/api/v1/member/ann/export").json()
    text = str(export)
    for value in (*PERSONAL.values(), "Ann L. Lee", "TH"):
        assert value not in text, value


def test_erasure_is_idempotent_and_irreversible(api, ann):
    assert api.post(URL, {"reason": "request"}, format="json").status_code == 200
    again = api.post(URL, {"reason": "request again"}, format="json")
    assert (again.status_code, again.json()["status"]) == (200, "erased")
    assert AuditEntry.objects.filter(action="member.erased").count() == 1
    assert OutboxMessage.objects.filter(type="member.erased").count() == 1
    with pytest.raises(Conflict):
        update_member_profile(tenant=ann.tenant, member=ann, changes={"name": "Back"}, actor="system")


def test_events_for_an_erased_member_are_refused_and_nothing_is_stored(api, ann):
    assert api.post(URL, {"reason": "request"}, format="json").status_code == 200
    stored = MemberEvent.objects.count()
    assert_problem(api.post("/api/v1/member/ann/event", stay("s-2"), format="json"), 409, "member_erased")
    batch = api.post("/api/v1/events/batch", {"events": [{**stay("s-3"), "member_id": "ann"}]}, format="json")
    assert batch.status_code == 202
    assert [(r["outcome"], r["code"]) for r in batch.json()["results"]] == [("rejected", "member_erased")]
    assert MemberEvent.objects.count() == stored


def test_bad_input_another_tenant_no_token_and_a_small_scope(api, ann, other_tenant, api_client_for):
    body = assert_problem(api.post(URL, {}, format="json"), 422, "validation_error")
    assert "reason" in body["errors"]
    assert_problem(api.post(URL, {"reason": "  "}, format="json"), 422, "validation_error")
    MemberFactory(tenant=other_tenant, external_id="theirs")
    assert_problem(api.post("/api/v1/member/theirs/erase", {"reason": "x"}, format="json"), 404, "member_not_found")
    assert_problem(APIClient().post(URL, {"reason": "x"}, format="json"), 401, "not_authenticated")
    writer = api_client_for(ann.tenant, "privilege:read privilege:write")
    assert_problem(writer.post(URL, {"reason": "x"}, format="json"), 403, "insufficient_scope")
    ann.refresh_from_db()
    assert (ann.status, ann.name) == ("active", "Ann L. Lee")
    assert not AuditEntry.objects.filter(action="member.erased").exists()

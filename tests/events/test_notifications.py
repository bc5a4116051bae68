"""Notifications (seed 14.9): ``POST /notification/send`` and ``GET /notification/{member_id}/status``,
delivered by the relay's Notification adapter to a real HTTP provider (pytest-httpserver)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from config.api import SCOPE_READ, SCOPE_WRITE
from events import admin_integrations  # noqa: F401 - registers the Notification admin
from events.models import Notification
from members.models import Member
from outbox.models import Delivery, OutboxMessage
from tests.events.peers import Peer, relay_until_settled
from tests.factories import MemberFactory, TenantMembershipFactory, UserFactory
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db
SEND = "/api/v1/notification/send"


def _status_url(member_id: str) -> str:
    return f"/api/v1/notification/{member_id}/status"


@pytest.fixture(autouse=True)
def _integrations_off(settings):
    settings.BROKER_PUBLISH = False
    settings.IAM_BASE_URL = settings.POINT_SERVICE_URL = settings.NOTIFICATION_BASE_URL = ""
    settings.NOTIFICATION_TOKEN = "notify-token"
    settings.INTEGRATION_CONNECT_TIMEOUT = settings.INTEGRATION_READ_TIMEOUT = 0.5


@pytest.fixture
def provider(settings, httpserver):
    settings.NOTIFICATION_BASE_URL = httpserver.url_for("")
    return httpserver


@pytest.fixture
def ann(tenant):
    return MemberFactory(tenant=tenant, external_id="ann", email="ann@example.com", mobile="+66812345678")


def _send(client, member_id="ann", channel="email", template="tier-upgrade", data=None, **extra):
    body = {"member_id": member_id, "channel": channel, "template": template, "data": data or {"tier": "gold"}}
    return client.post(SEND, body, format="json", **extra)


def _stored() -> tuple[int, int, int]:
    return Notification.objects.count(), OutboxMessage.objects.count(), AuditEntry.objects.count()


# --- send and deliver -----------------------------------------------------------------------------
def test_a_notification_is_stored_announced_and_sent_with_its_id_as_key(api, tenant, ann, provider):
    peer = Peer(reply={"id": "prov-77", "status": "queued"})
    provider.expect_request("/notifications", method="POST").respond_with_handler(peer)

    response = _send(api)
    assert response.status_code == 202, response.content
    body = response.json()
    notification = Notification.objects.get()
    assert body == {
        "id": str(notification.pk),
        "member_id": "ann",
        "channel": "email",
        "template": "tier-upgrade",
        "data": {"tier": "gold"},
        "status": "requested",
        "external_id": "",
        "attempts": 0,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    message = OutboxMessage.objects.get()
    assert (message.type, message.member_id) == ("notification.requested", "ann")
    assert message.data == {
        "notification_id": str(notification.pk),
        "channel": "email",
        "template": "tier-upgrade",
        "status": "requested",
    }
    audit = AuditEntry.objects.get(action="notification.requested")
    assert audit.after == {"channel": "email", "template": "tier-upgrade", "status": "requested"}

    relay_until_settled()
    (request,) = peer.requests
    assert (request["key"], request["auth"]) == (str(notification.pk), "Bearer notify-token")
    sent = request["body"]
    assert {k: sent[k] for k in ("id", "tenant", "member_id", "channel", "template", "data", "recipient")} == {
        "id": str(notification.pk),
        "tenant": "acme",
        "member_id": "ann",
        "channel": "email",
        "template": "tier-upgrade",
        "data": {"tier": "gold"},
        "recipient": {"email": "ann@example.com"},
    }
    notification.refresh_from_db()
    assert (notification.status, notification.external_id, notification.attempts) == ("sent", "prov-77", 1)
    assert Delivery.objects.get().destination == "notification"

    listed = api.get(_status_url("ann")).json()
    assert listed["count"] == 1
    assert (listed["results"][0]["status"], listed["results"][0]["external_id"]) == ("sent", "prov-77")


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [("sms", {"mobile": "+66812345678"}), ("push", {"member_id": "ann"})],
)
def test_each_channel_reaches_its_address(api, ann, provider, channel, recipient):
    peer = Peer(reply={"id": "p1", "status": "delivered"})
    provider.expect_request("/notifications", method="POST").respond_with_handler(peer)
    assert _send(api, channel=channel).status_code == 202
    relay_until_settled()
    assert peer.requests[0]["body"]["recipient"] == recipient
    assert Notification.objects.get().status == "delivered"  # the provider's own status, kept


def test_a_timeout_and_a_5xx_are_retried_with_the_same_key_and_sent_once(api, ann, provider):
    peer = Peer(script=["sleep", 503], reply={"id": "prov-1", "status": "accepted"})
    provider.expect_request("/notifications", method="POST").respond_with_handler(peer)
    _send(api)
    relay_until_settled()
    notification = Notification.objects.get()
    assert peer.keys == [str(notification.pk)] * 3
    assert peer.effects == [str(notification.pk)]
    assert (notification.status, notification.attempts, notification.last_error) == ("sent", 3, "")


def test_a_refused_notification_fails_with_the_providers_answer(api, ann, provider):
    provider.expect_request("/notifications", method="POST").respond_with_handler(Peer(script=[400]))
    _send(api)
    relay_until_settled()
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("failed", 1)
    assert notification.last_error.startswith("HTTP 400")
    assert Delivery.objects.get().status == "dead"
    assert api.get(_status_url("ann")).json()["results"][0]["status"] == "failed"


def test_an_operators_retry_of_a_failed_notification_sends_it(api, tenant, ann, provider):
    from outbox.services import retry_deliveries

    peer = Peer(script=[400])
    provider.expect_request("/notifications", method="POST").respond_with_handler(peer)
    _send(api)
    relay_until_settled()
    assert retry_deliveries(tenant=tenant, deliveries=Delivery.objects.all(), actor="ops") == 1
    assert Notification.objects.get().status == "requested"  # pending again, not "failed"
    relay_until_settled()
    notification = Notification.objects.get()
    assert (notification.status, len(peer.keys), Delivery.objects.get().status) == ("sent", 2, "delivered")


def test_retries_exhausted_fail_the_notification(api, ann, provider, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    provider.expect_request("/notifications", method="POST").respond_with_handler(Peer(script=[500] * 5))
    _send(api)
    relay_until_settled()
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("failed", 2)


def test_without_a_notification_service_it_is_stored_skipped_and_nothing_is_sent(api, ann, httpserver):
    response = _send(api)
    assert response.status_code == 202
    assert response.json()["status"] == "skipped"
    relay_until_settled()
    assert Notification.objects.get().status == "skipped"
    assert not Delivery.objects.exists()
    assert OutboxMessage.objects.get().status == "delivered"  # nobody wanted it
    assert httpserver.log == []


def test_an_idempotency_key_replays_the_first_answer(api, ann):
    first = _send(api, HTTP_IDEMPOTENCY_KEY="n-1")
    again = _send(api, HTTP_IDEMPOTENCY_KEY="n-1")
    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Notification.objects.count() == 1


# --- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"channel": "email", "template": "t"}, {"member_id"}),
        ({"member_id": "ann", "channel": "fax", "template": "t"}, {"channel"}),
        ({"member_id": "ann", "channel": "email", "template": "no spaces"}, {"template"}),
        ({"member_id": "ann", "channel": "email", "template": "x" * 101}, {"template"}),
        ({"member_id": "ann", "channel": "email", "template": "t", "data": ["a"]}, {"data"}),
        ({"member_id": "ann", "channel": "email", "template": "t", "data": {"x": "y" * 17000}}, {"data"}),
        ({}, {"member_id", "channel", "template"}),
    ],
    ids=["no-member", "unknown-channel", "bad-template", "long-template", "data-not-object", "data-too-big", "empty"],
)
def test_malformed_requests_are_422_and_store_nothing(api, ann, body, fields):
    before = _stored()
    problem = assert_problem(api.post(SEND, body, format="json"), 422, "validation_error")
    assert set(problem["errors"]) == fields
    assert _stored() == before


def test_a_member_without_an_address_for_the_channel_is_422(api, tenant):
    MemberFactory(tenant=tenant, external_id="bob", email="", mobile="")
    before = _stored()
    for channel in ("email", "sms"):
        problem = assert_problem(_send(api, member_id="bob", channel=channel), 422, "validation_error")
        assert set(problem["errors"]) == {"channel"}
    assert _stored() == before
    assert _send(api, member_id="bob", channel="push").status_code == 202


def test_an_erased_member_is_not_notified(api, tenant):
    MemberFactory(tenant=tenant, external_id="gone", status=Member.Status.ERASED)
    before = _stored()
    assert_problem(_send(api, member_id="gone", channel="push"), 409, "member_erased")
    assert _stored() == before


def test_another_tenants_member_is_not_found(api, ann, other_tenant, api_client_for):
    MemberFactory(tenant=other_tenant, external_id="theirs", email="t@example.com")
    before = _stored()
    assert_problem(_send(api, member_id="theirs"), 404, "member_not_found")
    assert_problem(_send(api, member_id="nobody"), 404, "member_not_found")
    assert_problem(api.get(_status_url("theirs")), 404, "member_not_found")
    # ...and the other tenant sees none of acme's notifications.
    _send(api)
    theirs = api_client_for(other_tenant)
    assert theirs.get(_status_url("theirs")).json()["count"] == 0
    assert_problem(theirs.get(_status_url("ann")), 404, "member_not_found")
    assert _stored()[0] == before[0] + 1


def test_auth_and_scopes(ann, tenant, api_client_for):
    from rest_framework.test import APIClient

    before = _stored()
    assert_problem(_send(APIClient()), 401, "not_authenticated")
    assert_problem(APIClient().get(_status_url("ann")), 401, "not_authenticated")
    reader = api_client_for(tenant, SCOPE_READ)
    assert_problem(_send(reader), 403, "insufficient_scope")
    assert reader.get(_status_url("ann")).status_code == 200
    assert_problem(api_client_for(tenant, "").get(_status_url("ann")), 403, "insufficient_scope")
    assert _stored() == before
    assert _send(api_client_for(tenant, SCOPE_WRITE)).status_code == 202


def test_malformed_json_is_400(api, ann):
    response = api.generic("POST", SEND, '{"member_id": ', content_type="application/json")
    assert_problem(response, 400, "malformed_json")
    assert Notification.objects.count() == 0


# --- status listing -------------------------------------------------------------------------------
def test_status_lists_newest_first_paginated_and_filtered(api, tenant, ann):
    now = timezone.now()
    for age, template, status in ((3, "oldest", "sent"), (2, "middle", "failed"), (1, "newest", "sent")):
        Notification.objects.create(
            tenant=tenant,
            member=ann,
            channel="email",
            template=template,
            status=status,
            created_at=now - timedelta(hours=age),
        )
    other = MemberFactory(tenant=tenant, external_id="bob")
    Notification.objects.create(tenant=tenant, member=other, channel="push", template="not-ann")

    listed = api.get(_status_url("ann")).json()
    assert [n["template"] for n in listed["results"]] == ["newest", "middle", "oldest"]
    page = api.get(_status_url("ann"), {"page_size": 2, "page": 2}).json()
    assert (page["count"], [n["template"] for n in page["results"]]) == (3, ["oldest"])
    assert page["previous"] is not None
    assert page["next"] is None
    failed = api.get(_status_url("ann"), {"status": "failed"}).json()
    assert [n["template"] for n in failed["results"]] == ["middle"]
    assert api.get(_status_url("ann"), {"channel": "sms"}).json()["count"] == 0


def test_status_query_count_does_not_grow_with_the_page(api, tenant, ann, django_assert_max_num_queries):
    for i in range(20):
        Notification.objects.create(tenant=tenant, member=ann, channel="push", template=f"t{i}")
    with django_assert_max_num_queries(8):
        assert api.get(_status_url("ann")).json()["count"] == 20


# --- admin ----------------------------------------------------------------------------------------
def test_the_admin_lists_only_the_staff_users_tenant_read_only(client, tenant, other_tenant, ann):
    mine = Notification.objects.create(tenant=tenant, member=ann, channel="email", template="mine")
    theirs_member = MemberFactory(tenant=other_tenant, external_id="theirs")
    theirs = Notification.objects.create(tenant=other_tenant, member=theirs_member, channel="push", template="t")
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="events"))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)

    changelist = client.get(reverse("admin:events_notification_changelist"))
    assert changelist.status_code == 200
    assert list(changelist.context["cl"].queryset) == [mine]
    assert client.get(reverse("admin:events_notification_change", args=[mine.pk])).status_code == 200
    assert client.get(reverse("admin:events_notification_change", args=[theirs.pk])).status_code == 302
    assert client.get(reverse("admin:events_notification_add")).status_code == 403
    for term in ("ann", "mine", "not-a-uuid", str(mine.pk)):
        found = client.get(reverse("admin:events_notification_changelist"), {"q": term})
        assert list(found.context["cl"].queryset) == ([] if term == "not-a-uuid" else [mine])

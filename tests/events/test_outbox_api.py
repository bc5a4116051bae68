"""The outbox's operator side (DOMAIN §8): webhook subscription services and API (secrets generated,
rotated with a grace period, never read back), the outbox and its deliveries, replay, hand-published
messages, and retrying deliveries. Every write is audited, and every refusal stores nothing."""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from config.errors import Invalid
from events.publish import publish_event
from members.errors import MemberNotFound
from outbox import services as subscriptions
from outbox.emit import emit
from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from outbox.webhooks import signing_secrets
from tests.factories import MemberFactory
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/hook"
SUBS = "/api/v1/webhook/subscription"
OUTBOX = "/api/v1/outbox"
PUBLISH = "/api/v1/event/publish"
READ, WRITE, ADMIN = "privilege:read", "privilege:write", "privilege:admin"
SUBSCRIPTION_KEYS = {
    "id",
    "url",
    "description",
    "event_types",
    "active",
    "disabled_reason",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
}
DELIVERY_KEYS = {
    "id",
    "destination",
    "subscription",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "delivered_at",
}


@pytest.fixture(autouse=True)
def _local_hooks(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.BROKER_PUBLISH = False


def _subscription(tenant, **fields) -> WebhookSubscription:
    with transaction.atomic():
        sub = WebhookSubscription(url=fields.pop("url", HOOK), **fields)
        return subscriptions.save_subscription(tenant=tenant, subscription=sub, actor="ops")


def _emit(tenant, member_id="ann", type_="tier.changed", **data) -> OutboxMessage:
    with transaction.atomic():
        return emit(tenant=tenant, type=type_, member_id=member_id, data=data, correlation_id="req-1")


def _delivery(message, sub=None, **fields) -> Delivery:
    return Delivery.objects.create(
        tenant=message.tenant,
        message=message,
        destination="webhook" if sub else "broker",
        subscription=sub,
        **fields,
    )


def _audit(tenant=None):
    entries = AuditEntry.objects.order_by("id")
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    return list(entries.values_list("action", "target_id"))


def _audit_text() -> str:
    return json.dumps(list(AuditEntry.objects.values("before", "after", "reason")), default=str)


# --- services -------------------------------------------------------------------------------------
def test_a_new_subscription_gets_a_secret_and_an_audit_entry_without_it(tenant):
    sub = _subscription(tenant, event_types=["tier.changed", "tier.changed", "points.applied"])
    assert sub.secret.startswith("whsec_")
    assert len(sub.secret) > 40
    assert (sub.previous_secret, sub.previous_secret_expires_at) == ("", None)
    assert sub.event_types == ["tier.changed", "points.applied"]  # duplicates dropped, order kept
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target_id, entry.actor, entry.before) == (
        "webhooksubscription.created",
        str(sub.pk),
        "ops",
        None,
    )
    assert {"secret", "previous_secret"}.isdisjoint(entry.after)
    assert entry.after["url"] == HOOK
    assert sub.secret not in _audit_text()


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"event_types": ["tier.changed", "nope"]}, {"event_types"}),
        ({"event_types": "tier.changed"}, {"event_types"}),
        ({"event_types": [{"type": "tier.changed"}]}, {"event_types"}),
        ({"url": "ftp://example.com/hook"}, {"url"}),
        ({"url": "not a url", "event_types": ["x"]}, {"url", "event_types"}),
    ],
    ids=["unknown-type", "types-not-a-list", "types-not-strings", "ftp", "garbage-url-and-type"],
)
def test_invalid_subscriptions_are_refused_with_field_errors(tenant, fields, errors):
    with pytest.raises(Invalid) as refused:
        _subscription(tenant, **fields)
    assert set(refused.value.errors) == errors
    assert (WebhookSubscription.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_a_private_address_is_refused_unless_allowed(tenant, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(Invalid) as refused:
        _subscription(tenant, url="http://127.0.0.1/hook")
    assert list(refused.value.errors) == ["url"]
    assert "non-public address (127.0.0.1)" in refused.value.errors["url"][0]
    assert WebhookSubscription.objects.count() == 0


def test_an_update_keeps_the_stored_secrets_whatever_the_object_carries(tenant):
    sub = _subscription(tenant)
    secret = sub.secret
    sub.secret, sub.previous_secret, sub.description = "whsec_forged", "whsec_old", "changed"
    with transaction.atomic():
        subscriptions.save_subscription(tenant=tenant, subscription=sub, actor="ops")
    stored = WebhookSubscription.objects.get()
    assert (stored.secret, stored.previous_secret, stored.description) == (secret, "", "changed")
    assert _audit() == [("webhooksubscription.created", str(sub.pk)), ("webhooksubscription.updated", str(sub.pk))]
    assert AuditEntry.objects.order_by("id").last().before["description"] == ""


def test_re_enabling_a_subscription_disabled_by_a_410_clears_the_reason(tenant):
    sub = _subscription(tenant)
    WebhookSubscription.objects.filter(pk=sub.pk).update(active=False, disabled_reason="410 Gone at 2026-03-01")
    sub.refresh_from_db()
    sub.description = "still off"
    with transaction.atomic():
        subscriptions.save_subscription(tenant=tenant, subscription=sub, actor="ops")
    assert WebhookSubscription.objects.values_list("active", "disabled_reason").get() == (
        False,
        "410 Gone at 2026-03-01",
    )
    sub.active = True
    with transaction.atomic():
        subscriptions.save_subscription(tenant=tenant, subscription=sub, actor="ops")
    assert WebhookSubscription.objects.values_list("active", "disabled_reason").get() == (True, "")


def test_rotation_keeps_the_old_secret_signing_for_the_grace_period(tenant):
    sub = _subscription(tenant)
    old = sub.secret
    before = timezone.now()
    with transaction.atomic():
        rotated = subscriptions.rotate_secret(tenant=tenant, subscription=sub, actor="ops", grace_hours=6)
    stored = WebhookSubscription.objects.get()
    assert stored.secret == rotated.secret != old
    assert stored.secret.startswith("whsec_")
    assert stored.previous_secret == old
    grace_end = stored.previous_secret_expires_at
    assert before + timedelta(hours=6) <= grace_end <= timezone.now() + timedelta(hours=6)
    assert signing_secrets(stored, grace_end - timedelta(seconds=1)) == [stored.secret, old]
    assert signing_secrets(stored, grace_end) == [stored.secret]
    entry = AuditEntry.objects.order_by("id").last()
    assert (entry.action, entry.reason) == ("webhooksubscription.secret_rotated", "grace period 6 h")
    assert old not in _audit_text()
    assert stored.secret not in _audit_text()


@pytest.mark.parametrize("hours", [-1, 24 * 7 + 1])
def test_a_grace_period_out_of_range_is_refused(tenant, hours):
    sub = _subscription(tenant)
    with pytest.raises(Invalid) as refused, transaction.atomic():
        subscriptions.rotate_secret(tenant=tenant, subscription=sub, actor="ops", grace_hours=hours)
    assert list(refused.value.errors) == ["grace_hours"]
    assert WebhookSubscription.objects.get().secret == sub.secret


def test_deleting_a_subscription_settles_messages_that_waited_only_for_it(tenant):
    sub = _subscription(tenant)
    message = _emit(tenant)
    OutboxMessage.objects.filter(pk=message.pk).update(status="dispatched")
    _delivery(message, sub)
    _delivery(message, status="delivered", delivered_at=timezone.now())
    with transaction.atomic():
        subscriptions.delete_subscription(tenant=tenant, subscription=sub, actor="ops")
    assert WebhookSubscription.objects.count() == 0
    assert list(Delivery.objects.values_list("destination", "status")) == [("broker", "delivered")]
    assert OutboxMessage.objects.get().status == "delivered"
    entry = AuditEntry.objects.order_by("id").last()
    assert (entry.action, entry.target_id, entry.before["url"]) == ("webhooksubscription.deleted", str(sub.pk), HOOK)


def test_retry_makes_pending_and_dead_deliveries_due_now_and_leaves_the_rest(tenant, other_tenant):
    sub = _subscription(tenant)
    later = timezone.now() + timedelta(hours=3)
    dead_message, waiting_message = _emit(tenant), _emit(tenant, member_id="bob")
    OutboxMessage.objects.filter(pk=dead_message.pk).update(status="dead")
    dead = _delivery(dead_message, sub, status="dead", attempts=19, last_error="gave up", next_attempt_at=later)
    pending = _delivery(waiting_message, sub, attempts=4, next_attempt_at=later)
    done = _delivery(waiting_message, status="delivered", attempts=1, next_attempt_at=later)
    theirs = _delivery(_emit(other_tenant), status="dead", attempts=19, next_attempt_at=later)
    start = timezone.now()
    with transaction.atomic():
        count = subscriptions.retry_deliveries(tenant=tenant, deliveries=[dead, pending, done, theirs], actor="ops")
    assert count == 2
    rows = {d.pk: d for d in Delivery.objects.all()}
    assert (rows[dead.pk].status, rows[dead.pk].attempts, rows[dead.pk].last_error) == ("pending", 0, "")
    assert (rows[pending.pk].status, rows[pending.pk].attempts) == ("pending", 4)
    assert start <= rows[dead.pk].next_attempt_at <= timezone.now()
    assert start <= rows[pending.pk].next_attempt_at <= timezone.now()
    assert (rows[done.pk].status, rows[done.pk].next_attempt_at) == ("delivered", later)
    assert (rows[theirs.pk].status, rows[theirs.pk].next_attempt_at) == ("dead", later)
    assert OutboxMessage.objects.get(pk=dead_message.pk).status == "dispatched"
    assert _audit(tenant)[-2:] == [("delivery.retried", str(dead.pk)), ("delivery.retried", str(pending.pk))]
    assert AuditEntry.objects.filter(tenant=other_tenant).count() == 0


def test_publish_refuses_unknown_types_missing_members_and_oversized_data(tenant, other_tenant):
    MemberFactory(tenant=other_tenant, external_id="theirs")
    with pytest.raises(Invalid) as refused, transaction.atomic():
        publish_event(tenant=tenant, type="notification.requested", member_id="", data=[], actor="ops")
    assert set(refused.value.errors) == {"type", "data"}
    with pytest.raises(MemberNotFound), transaction.atomic():
        publish_event(tenant=tenant, type="tier.changed", member_id="theirs", data={}, actor="ops")
    with pytest.raises(Invalid) as refused, transaction.atomic():
        publish_event(tenant=tenant, type="tier.changed", member_id="", data={"x": "y" * 40_000}, actor="ops")
    assert list(refused.value.errors) == ["data"]
    assert (OutboxMessage.objects.count(), AuditEntry.objects.count()) == (0, 0)


# --- subscriptions API ----------------------------------------------------------------------------
def test_create_returns_the_secret_once_and_reads_never_do(api, tenant):
    response = api.post(SUBS, {"url": HOOK, "description": "CRM", "event_types": ["tier.changed"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    sub = WebhookSubscription.objects.get()
    assert set(body) == SUBSCRIPTION_KEYS | {"secret"}
    assert body["secret"] == sub.secret
    assert (body["id"], body["url"], body["description"], body["event_types"], body["active"]) == (
        sub.pk,
        HOOK,
        "CRM",
        ["tier.changed"],
        True,
    )
    assert (body["disabled_reason"], body["previous_secret_expires_at"]) == ("", None)
    assert _audit() == [("webhooksubscription.created", str(sub.pk))]

    listed = api.get(SUBS)
    assert listed.status_code == 200
    assert set(listed.json()) == {"count", "next", "previous", "results"}
    assert listed.json()["count"] == 1
    assert set(listed.json()["results"][0]) == SUBSCRIPTION_KEYS
    detail = api.get(f"{SUBS}/{sub.pk}")
    assert set(detail.json()) == SUBSCRIPTION_KEYS
    for read in (listed, detail):
        assert b"whsec_" not in read.content


def test_a_private_url_is_a_422_and_nothing_is_stored(api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    body = assert_problem(api.post(SUBS, {"url": "http://127.0.0.1/hook"}, format="json"), 422, "validation_error")
    assert list(body["errors"]) == ["url"]
    assert (WebhookSubscription.objects.count(), AuditEntry.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": HOOK, "event_types": ["tier.changed", "made.up"]}, "event_types"),
        ({"url": "notaurl"}, "url"),
        ({"event_types": []}, "url"),
        ({"url": HOOK, "event_types": "tier.changed"}, "event_types"),
        ({"url": HOOK, "active": "perhaps"}, "active"),
    ],
    ids=["unknown-type", "bad-url", "no-url", "types-not-a-list", "active-not-a-bool"],
)
def test_malformed_subscriptions_are_422_and_store_nothing(api, payload, field):
    body = assert_problem(api.post(SUBS, payload, format="json"), 422, "validation_error")
    assert field in body["errors"]
    assert (WebhookSubscription.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_put_replaces_patch_changes_and_neither_touches_the_secret(api, tenant):
    sub = _subscription(tenant, description="CRM", event_types=["tier.changed"])
    put = api.put(f"{SUBS}/{sub.pk}", {"url": "http://127.0.0.1:9/other"}, format="json")
    assert put.status_code == 200, put.content
    assert (put.json()["url"], put.json()["description"], put.json()["event_types"]) == (
        "http://127.0.0.1:9/other",
        "",
        [],
    )
    assert "secret" not in put.json()
    patch = api.patch(f"{SUBS}/{sub.pk}", {"event_types": ["points.applied"], "secret": "whsec_x"}, format="json")
    assert patch.status_code == 200, patch.content
    assert (patch.json()["url"], patch.json()["event_types"]) == ("http://127.0.0.1:9/other", ["points.applied"])
    assert WebhookSubscription.objects.get().secret == sub.secret
    assert [a for a, _ in _audit()] == ["webhooksubscription.created", *["webhooksubscription.updated"] * 2]


def test_patch_active_re_enables_a_gone_subscription(api, tenant):
    sub = _subscription(tenant)
    WebhookSubscription.objects.filter(pk=sub.pk).update(active=False, disabled_reason="410 Gone at x")
    response = api.patch(f"{SUBS}/{sub.pk}", {"active": True}, format="json")
    assert (response.status_code, response.json()["active"], response.json()["disabled_reason"]) == (200, True, "")


def test_an_invalid_update_is_a_422_and_changes_nothing(api, tenant, settings):
    sub = _subscription(tenant, description="CRM")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    body = assert_problem(
        api.patch(f"{SUBS}/{sub.pk}", {"url": "http://10.0.0.8/x", "description": "new"}, format="json"),
        422,
        "validation_error",
    )
    assert list(body["errors"]) == ["url"]
    assert WebhookSubscription.objects.values_list("url", "description").get() == (HOOK, "CRM")
    assert len(_audit()) == 1


def test_delete_is_a_204_and_audited(api, tenant):
    sub = _subscription(tenant)
    response = api.delete(f"{SUBS}/{sub.pk}")
    assert response.status_code == 204
    assert WebhookSubscription.objects.count() == 0
    assert _audit()[-1] == ("webhooksubscription.deleted", str(sub.pk))


def test_rotate_secret_returns_the_new_secret_once(api, tenant):
    sub = _subscription(tenant)
    response = api.post(f"{SUBS}/{sub.pk}/rotate-secret", {"grace_hours": 2}, format="json")
    assert response.status_code == 200, response.content
    stored = WebhookSubscription.objects.get()
    body = response.json()
    assert set(body) == SUBSCRIPTION_KEYS | {"secret"}
    assert body["secret"] == stored.secret != sub.secret
    assert stored.previous_secret == sub.secret
    expires = stored.previous_secret_expires_at
    assert body["previous_secret_expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert timedelta(hours=1, minutes=59) < expires - timezone.now() <= timedelta(hours=2)
    assert stored.secret.encode() not in api.get(f"{SUBS}/{sub.pk}").content
    # Without a body: the default 24 hours.
    again = api.post(f"{SUBS}/{sub.pk}/rotate-secret")
    assert again.status_code == 200
    assert (
        timedelta(hours=23, minutes=59) < WebhookSubscription.objects.get().previous_secret_expires_at - timezone.now()
    )


def test_rotate_with_a_bad_grace_period_is_a_422_and_keeps_the_secret(api, tenant):
    sub = _subscription(tenant)
    body = assert_problem(
        api.post(f"{SUBS}/{sub.pk}/rotate-secret", {"grace_hours": 1000}, format="json"), 422, "validation_error"
    )
    assert list(body["errors"]) == ["grace_hours"]
    assert WebhookSubscription.objects.values_list("secret", "previous_secret").get() == (sub.secret, "")


def test_subscription_scopes(api_client_for, tenant):
    sub = _subscription(tenant)
    reader = api_client_for(tenant, READ)
    assert reader.get(SUBS).status_code == 200
    assert reader.get(f"{SUBS}/{sub.pk}").status_code == 200
    writer = api_client_for(tenant, f"{READ} {WRITE}")
    for method, path, body in [
        ("post", SUBS, {"url": HOOK}),
        ("put", f"{SUBS}/{sub.pk}", {"url": HOOK}),
        ("patch", f"{SUBS}/{sub.pk}", {"description": "x"}),
        ("delete", f"{SUBS}/{sub.pk}", None),
        ("post", f"{SUBS}/{sub.pk}/rotate-secret", {}),
    ]:
        response = getattr(writer, method)(path, body, format="json")
        assert_problem(response, 403, "insufficient_scope")
    assert_problem(api_client_for(tenant, "").get(SUBS), 403, "insufficient_scope")
    from rest_framework.test import APIClient

    assert_problem(APIClient().get(SUBS), 401, "not_authenticated")
    assert WebhookSubscription.objects.values_list("secret", "description").get() == (sub.secret, "")


def test_another_tenants_subscription_is_not_found(api, tenant, other_tenant):
    theirs = _subscription(other_tenant, description="theirs")
    audit_before = AuditEntry.objects.count()
    for method, path, body in [
        ("get", f"{SUBS}/{theirs.pk}", None),
        ("put", f"{SUBS}/{theirs.pk}", {"url": HOOK}),
        ("patch", f"{SUBS}/{theirs.pk}", {"description": "mine"}),
        ("delete", f"{SUBS}/{theirs.pk}", None),
        ("post", f"{SUBS}/{theirs.pk}/rotate-secret", {}),
    ]:
        assert_problem(getattr(api, method)(path, body, format="json"), 404, "not_found")
    assert api.get(SUBS).json()["count"] == 0
    assert WebhookSubscription.objects.values_list("secret", "description").get() == (theirs.secret, "theirs")
    assert AuditEntry.objects.count() == audit_before


# --- outbox API -----------------------------------------------------------------------------------
def test_the_outbox_lists_newest_first_with_filters(api, tenant, other_tenant):
    first = _emit(tenant, member_id="ann", type_="member.created")
    second = _emit(tenant, member_id="bob", type_="tier.changed", to="gold")
    third = _emit(tenant, member_id="ann", type_="points.applied", points=10)
    _emit(other_tenant, member_id="ann")
    OutboxMessage.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=2))
    OutboxMessage.objects.filter(pk=second.pk).update(status="dead")

    def ids(query=""):
        response = api.get(f"{OUTBOX}{query}")
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [str(third.pk), str(second.pk), str(first.pk)]
    assert ids("?status=dead") == [str(second.pk)]
    assert ids("?type=points.applied") == [str(third.pk)]
    assert ids("?member_id=ann") == [str(third.pk), str(first.pk)]
    cutoff = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"?created_before={cutoff}") == [str(first.pk)]
    assert ids(f"?created_after={cutoff}&member_id=ann") == [str(third.pk)]
    page = api.get(f"{OUTBOX}?page_size=2").json()
    assert (page["count"], len(page["results"]), page["previous"]) == (3, 2, None)
    assert page["next"].endswith("page=2&page_size=2")
    body = api.get(f"{OUTBOX}?type=tier.changed").json()["results"][0]
    assert body == {
        "id": str(second.pk),
        "type": "tier.changed",
        "member_id": "bob",
        "sequence": 1,
        "occurred_at": body["occurred_at"],
        "correlation_id": "req-1",
        "data": {"to": "gold"},
        "status": "dead",
        "created_at": body["created_at"],
        "delivered_at": None,
        "deliveries": [],
    }
    assert_problem(api.get(f"{OUTBOX}?status=lost"), 422, "validation_error")


def test_a_message_shows_its_deliveries(api, tenant):
    sub = _subscription(tenant)
    message = _emit(tenant)
    hook = _delivery(message, sub, status="dead", attempts=3, last_status_code=503, last_error="HTTP 503: no")
    broker = _delivery(message, status="delivered", attempts=1, delivered_at=timezone.now())
    response = api.get(f"{OUTBOX}/{message.pk}")
    assert response.status_code == 200, response.content
    deliveries = response.json()["deliveries"]
    assert [set(d) for d in deliveries] == [DELIVERY_KEYS, DELIVERY_KEYS]
    assert [
        (
            d["id"],
            d["destination"],
            d["subscription"],
            d["status"],
            d["attempts"],
            d["last_status_code"],
            d["last_error"],
        )
        for d in deliveries
    ] == [
        (hook.pk, "webhook", sub.pk, "dead", 3, 503, "HTTP 503: no"),
        (broker.pk, "broker", None, "delivered", 1, None, ""),
    ]
    assert [d["delivered_at"] is None for d in deliveries] == [True, False]


def test_reading_the_outbox_needs_the_admin_scope(api_client_for, tenant):
    message = _emit(tenant)
    for scope in (READ, f"{READ} {WRITE}", "privilege:audit"):
        client = api_client_for(tenant, scope)
        assert_problem(client.get(OUTBOX), 403, "insufficient_scope")
        assert_problem(client.get(f"{OUTBOX}/{message.pk}"), 403, "insufficient_scope")
    from rest_framework.test import APIClient

    assert_problem(APIClient().get(OUTBOX), 401, "not_authenticated")
    assert api_client_for(tenant, ADMIN).get(OUTBOX).status_code == 200


def test_another_tenants_message_is_not_found(api, other_tenant):
    theirs = _emit(other_tenant)
    _delivery(theirs, status="dead")
    assert_problem(api.get(f"{OUTBOX}/{theirs.pk}"), 404, "not_found")
    assert_problem(api.get(f"{OUTBOX}/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(api.post(f"{OUTBOX}/{theirs.pk}/replay"), 404, "not_found")
    assert Delivery.objects.get().status == "dead"
    assert AuditEntry.objects.count() == 0


def test_replay_makes_dead_deliveries_due_then_has_nothing_left(api, api_client_for, tenant):
    sub = _subscription(tenant)
    message = _emit(tenant)
    OutboxMessage.objects.filter(pk=message.pk).update(status="dead")
    dead = _delivery(message, sub, status="dead", attempts=19, last_error="gave up")
    _delivery(message, status="delivered", attempts=1)
    assert_problem(api_client_for(tenant, WRITE).post(f"{OUTBOX}/{message.pk}/replay"), 403, "insufficient_scope")

    response = api.post(f"{OUTBOX}/{message.pk}/replay")
    assert response.status_code == 200, response.content
    assert response.json() == {"id": str(message.pk), "replayed": 1, "status": "dispatched"}
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error) == ("pending", 0, "")
    entry = AuditEntry.objects.order_by("id").last()
    assert (entry.action, entry.target_id, entry.after) == ("outbox.replayed", str(message.pk), {"deliveries": 1})

    audit_count = AuditEntry.objects.count()
    again = assert_problem(api.post(f"{OUTBOX}/{message.pk}/replay"), 409, "nothing_to_replay")
    assert again["detail"] == "The message has no dead delivery to replay."
    assert AuditEntry.objects.count() == audit_count
    assert_problem(
        api.generic("POST", f"{OUTBOX}/{message.pk}/replay", "{", content_type="application/json"),
        400,
        "malformed_json",
    )


# --- publish API ----------------------------------------------------------------------------------
def test_publish_writes_a_message_with_the_members_next_sequence(api, tenant):
    MemberFactory(tenant=tenant, external_id="ann")
    _emit(tenant, member_id="ann")
    response = api.post(
        PUBLISH,
        {"type": "tier.changed", "member_id": "ann", "data": {"tier_type": "hotel", "to": "gold"}},
        format="json",
        HTTP_X_REQUEST_ID="req-publish-1",
    )
    assert response.status_code == 202, response.content
    message = OutboxMessage.objects.get(sequence=2)
    assert response.json() == {"id": str(message.pk), "type": "tier.changed", "sequence": 2, "status": "pending"}
    assert (message.tenant, message.member_id, message.data, message.correlation_id) == (
        tenant,
        "ann",
        {"tier_type": "hotel", "to": "gold"},
        "req-publish-1",
    )
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target_id, entry.member_id, entry.after) == (
        "outbox.published",
        str(message.pk),
        "ann",
        {"type": "tier.changed", "sequence": 2},
    )


def test_publish_without_a_member_uses_the_tenants_stream(api):
    response = api.post(PUBLISH, {"type": "points.adjusted"}, format="json")
    assert response.status_code == 202, response.content
    message = OutboxMessage.objects.get()
    assert (message.member_id, message.sequence, message.data) == ("", 1, {})


def test_publish_with_an_idempotency_key_writes_once(api, tenant):
    MemberFactory(tenant=tenant, external_id="ann")
    body = {"type": "benefit.applied", "member_id": "ann", "data": {"benefit": "late-checkout"}}
    first = api.post(PUBLISH, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post(PUBLISH, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (202, 202, "true")
    assert again.json() == first.json()
    assert OutboxMessage.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "tier.exploded", "member_id": "ann"}, "type"),
        ({"type": "notification.requested", "member_id": "ann"}, "type"),
        ({"member_id": "ann"}, "type"),
        ({"type": "tier.changed", "member_id": "ann", "data": [1, 2]}, "data"),
        ({"type": "tier.changed", "member_id": "ann", "data": "text"}, "data"),
        ({"type": "tier.changed", "member_id": "ann", "data": {"blob": "x" * 40_000}}, "data"),
        ({"type": "tier.changed", "member_id": "a" * 201}, "member_id"),
    ],
    ids=["unknown-type", "notification-command", "no-type", "data-list", "data-string", "data-too-big", "long-id"],
)
def test_malformed_publish_is_a_422_and_stores_nothing(api, tenant, payload, field):
    MemberFactory(tenant=tenant, external_id="ann")
    body = assert_problem(api.post(PUBLISH, payload, format="json"), 422, "validation_error")
    assert list(body["errors"]) == [field]
    assert (OutboxMessage.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_publish_for_another_tenants_member_is_a_404(api, other_tenant):
    MemberFactory(tenant=other_tenant, external_id="theirs")
    body = {"type": "tier.changed", "member_id": "theirs", "data": {}}
    assert_problem(api.post(PUBLISH, body, format="json"), 404, "member_not_found")
    assert (OutboxMessage.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_publish_needs_the_admin_scope(api_client_for, tenant):
    MemberFactory(tenant=tenant, external_id="ann")
    body = {"type": "tier.changed", "member_id": "ann"}
    assert_problem(
        api_client_for(tenant, f"{READ} {WRITE}").post(PUBLISH, body, format="json"), 403, "insufficient_scope"
    )
    from rest_framework.test import APIClient

    assert_problem(APIClient().post(PUBLISH, body, format="json"), 401, "not_authenticated")
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # on-commit callbacks run as in production
def test_in_process_the_relay_runs_after_the_response_never_inside_the_request(api, tenant, monkeypatch, settings):
    """No broker: a request that writes a message does not deliver it in its on-commit callback (a
    webhook or IAM call would hold the response); the middleware runs the relay once the response is
    closed, i.e. sent. Outside a request a kick runs it at once. (CI configures a broker: the test
    switches to in-process mode itself.)"""
    from outbox import middleware, tasks

    settings.CELERY_TASK_ALWAYS_EAGER = True

    inside, after = [], []
    monkeypatch.setattr(tasks.deliver_outbox, "delay", lambda: inside.append(1))
    monkeypatch.setattr(
        middleware, "deliver_outbox", type("Task", (), {"delay": staticmethod(lambda: after.append(1))})
    )
    response = api.post(PUBLISH, {"type": "points.adjusted"}, format="json")
    assert (response.status_code, inside, after) == (202, [], [1])
    tasks.kick()
    assert (inside, after) == ([1], [1])

"""The outbox portal: webhook subscriptions (saved through the services, secret shown once, rotated by
an action), outbox messages with their deliveries (read-only; dead ones replayed by an action), and
deliveries (read-only; "retry now"). Every page renders for a tenant's staff and shows nothing of
another tenant; every write is audited with the staff user as actor."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from outbox import services as subscriptions
from outbox.emit import emit
from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from tests.factories import TenantMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _local_hooks(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.BROKER_PUBLISH = False


@pytest.fixture
def staff(tenant):
    """A staff user of tenant acme with every permission of the events app."""
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["events", "outbox"]))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def logged_in(client, staff):
    client.force_login(staff)
    return client


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def audit_trail():
    return list(AuditEntry.objects.order_by("id").values_list("action", "actor", "target_id"))


def _subscription(tenant, **fields) -> WebhookSubscription:
    with transaction.atomic():
        sub = WebhookSubscription(url=fields.pop("url", HOOK), **fields)
        return subscriptions.save_subscription(tenant=tenant, subscription=sub, actor="ops")


def outbox_world(tenant, suffix=""):
    """A subscription, a dead message (a dead webhook delivery, a delivered broker one) and a
    dispatched message (a pending webhook delivery), without going through the relay."""
    sub = _subscription(tenant, description=f"CRM{suffix}")
    with transaction.atomic():
        dead = emit(tenant=tenant, type="tier.changed", member_id=f"ann{suffix}", data={"to": "gold"})
        waiting = emit(tenant=tenant, type="points.applied", member_id=f"bob{suffix}", data={"points": 5})
    OutboxMessage.objects.filter(pk=dead.pk).update(status="dead")
    OutboxMessage.objects.filter(pk=waiting.pk).update(status="dispatched")
    later = timezone.now() + timedelta(hours=2)
    return {
        "sub": sub,
        "dead": dead,
        "waiting": waiting,
        "dead_delivery": Delivery.objects.create(
            tenant=tenant,
            message=dead,
            destination="webhook",
            subscription=sub,
            status="dead",
            attempts=19,
            last_status_code=503,
            last_error="gave up after 19 attempts",
            next_attempt_at=later,
        ),
        "broker_delivery": Delivery.objects.create(
            tenant=tenant, message=dead, destination="broker", status="delivered", attempts=1, next_attempt_at=later
        ),
        "pending_delivery": Delivery.objects.create(
            tenant=tenant,
            message=waiting,
            destination="webhook",
            subscription=sub,
            attempts=3,
            next_attempt_at=later,
        ),
    }


# --- pages ----------------------------------------------------------------------------------------
def test_every_page_renders_and_shows_only_the_users_tenant(logged_in, tenant, other_tenant):
    mine, theirs = outbox_world(tenant), outbox_world(other_tenant, suffix="-g")
    pages = [
        (WebhookSubscription, mine["sub"].pk, theirs["sub"].pk),
        (OutboxMessage, mine["dead"].pk, theirs["dead"].pk),
        (Delivery, mine["dead_delivery"].pk, theirs["dead_delivery"].pk),
    ]
    for model, own, other in pages:
        changelist = logged_in.get(url(model, "changelist"))
        assert changelist.status_code == 200, model
        assert {o.tenant_id for o in changelist.context["cl"].queryset} == {tenant.pk}, model
        assert logged_in.get(url(model, "change", own)).status_code == 200, model
        assert logged_in.get(url(model, "change", other)).status_code == 302, model  # "does not exist"
    assert logged_in.get(url(WebhookSubscription, "add")).status_code == 200
    assert logged_in.get(url(WebhookSubscription, "history", mine["sub"].pk)).status_code == 200
    assert logged_in.get(url(WebhookSubscription, "history", theirs["sub"].pk)).status_code == 404


def test_the_subscription_pages_never_show_a_secret(logged_in, tenant):
    sub = _subscription(tenant)
    for page in (url(WebhookSubscription, "changelist"), url(WebhookSubscription, "change", sub.pk)):
        response = logged_in.get(page)
        assert b"whsec_" not in response.content
    form = logged_in.get(url(WebhookSubscription, "change", sub.pk)).context["adminform"].form
    assert set(form.fields) == {"url", "description", "event_types", "active"}


def test_the_outbox_lists_filter_and_search(logged_in, tenant):
    world = outbox_world(tenant)
    dead, waiting = world["dead"], world["waiting"]

    def listed(model, query):
        response = logged_in.get(url(model, "changelist") + query)
        assert response.status_code == 200, query
        return set(response.context["cl"].queryset.values_list("pk", flat=True))

    assert listed(OutboxMessage, "?status=dead") == {dead.pk}
    assert listed(OutboxMessage, "?type=points.applied") == {waiting.pk}
    assert listed(OutboxMessage, "?q=bob") == {waiting.pk}
    assert listed(OutboxMessage, f"?q={dead.pk}") == {dead.pk}
    assert listed(Delivery, "?status=pending") == {world["pending_delivery"].pk}
    assert listed(Delivery, "?destination=broker") == {world["broker_delivery"].pk}
    assert listed(Delivery, "?destination=webhook&status=dead") == {world["dead_delivery"].pk}


def test_a_message_page_shows_its_deliveries_read_only(logged_in, tenant):
    world = outbox_world(tenant)
    page = logged_in.get(url(OutboxMessage, "change", world["dead"].pk))
    assert page.status_code == 200
    (inline,) = page.context["inline_admin_formsets"]
    assert [form.original for form in inline] == [world["dead_delivery"], world["broker_delivery"]]
    assert not inline.has_change_permission
    assert not inline.has_add_permission
    assert b"gave up after 19 attempts" in page.content
    assert b"&quot;to&quot;: &quot;gold&quot;" in page.content


# --- subscriptions through the services -----------------------------------------------------------
def _form(tenant, **overrides):
    return {"tenant": tenant.pk, "url": HOOK, "description": "CRM", "event_types": ["tier.changed"], "active": "on"} | (
        overrides
    )


def test_creating_a_subscription_shows_its_secret_once(logged_in, tenant):
    response = logged_in.post(url(WebhookSubscription, "add"), _form(tenant), follow=True)
    assert response.status_code == 200
    sub = WebhookSubscription.objects.get()
    assert (sub.tenant, sub.url, sub.description, sub.event_types, sub.active) == (
        tenant,
        HOOK,
        "CRM",
        ["tier.changed"],
        True,
    )
    assert sub.secret.startswith("whsec_")
    shown = [m for m in messages_of(response) if sub.secret in m]
    assert len(shown) == 1
    assert "not shown again" in shown[0]
    assert audit_trail() == [("webhooksubscription.created", "user:anna", str(sub.pk))]
    # The next page no longer shows it.
    assert sub.secret.encode() not in logged_in.get(url(WebhookSubscription, "change", sub.pk)).content


def test_an_unsafe_url_is_refused_on_the_form(logged_in, tenant, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = logged_in.post(url(WebhookSubscription, "add"), _form(tenant, url="http://127.0.0.1/hook"))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "non-public address" in form.errors["url"][0]
    assert (WebhookSubscription.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_re_enabling_a_gone_subscription_clears_the_reason_and_keeps_the_secret(logged_in, tenant):
    sub = _subscription(tenant)
    WebhookSubscription.objects.filter(pk=sub.pk).update(active=False, disabled_reason="410 Gone at x")
    response = logged_in.post(url(WebhookSubscription, "change", sub.pk), _form(tenant, event_types=[]))
    assert response.status_code == 302
    stored = WebhookSubscription.objects.get()
    assert (stored.active, stored.disabled_reason, stored.event_types, stored.secret) == (True, "", [], sub.secret)
    assert audit_trail()[-1] == ("webhooksubscription.updated", "user:anna", str(sub.pk))


def test_the_rotate_action_shows_each_new_secret(logged_in, tenant, other_tenant):
    first, second = _subscription(tenant), _subscription(tenant, url="http://127.0.0.1:9/other")
    theirs = _subscription(other_tenant)
    action = {"action": "rotate_secret", "_selected_action": [first.pk, second.pk, theirs.pk]}
    response = logged_in.post(url(WebhookSubscription, "changelist"), action, follow=True)
    assert response.status_code == 200
    rotated = {s.pk: s for s in WebhookSubscription.objects.all()}
    for old in (first, second):
        new = rotated[old.pk]
        assert new.secret != old.secret
        assert new.previous_secret == old.secret
        assert [m for m in messages_of(response) if new.secret in m]
    assert rotated[theirs.pk].secret == theirs.secret
    assert audit_trail()[-2:] == [
        ("webhooksubscription.secret_rotated", "user:anna", str(first.pk)),
        ("webhooksubscription.secret_rotated", "user:anna", str(second.pk)),
    ]


def test_deleting_a_subscription_goes_through_the_service(logged_in, tenant):
    sub = _subscription(tenant)
    response = logged_in.post(url(WebhookSubscription, "delete", sub.pk), {"post": "yes"})
    assert response.status_code == 302
    assert WebhookSubscription.objects.count() == 0
    assert audit_trail()[-1] == ("webhooksubscription.deleted", "user:anna", str(sub.pk))


# --- actions on the outbox ------------------------------------------------------------------------
def test_the_replay_action_replays_dead_deliveries_only(logged_in, tenant):
    world = outbox_world(tenant)
    mark = AuditEntry.objects.order_by("id").last().pk
    action = {"action": "replay_dead", "_selected_action": [world["dead"].pk, world["waiting"].pk]}
    response = logged_in.post(url(OutboxMessage, "changelist"), action, follow=True)
    assert response.status_code == 200
    assert messages_of(response) == ["1 dead deliveries of 1 message(s) are due again; 1 message(s) had none dead."]
    dead = Delivery.objects.get(pk=world["dead_delivery"].pk)
    assert (dead.status, dead.attempts, dead.last_error) == ("pending", 0, "")
    assert OutboxMessage.objects.get(pk=world["dead"].pk).status == "dispatched"
    assert Delivery.objects.get(pk=world["pending_delivery"].pk).attempts == 3
    entries = AuditEntry.objects.filter(pk__gt=mark).values_list("action", "actor", "target_id")
    assert list(entries) == [("outbox.replayed", "user:anna", str(world["dead"].pk))]


def test_the_retry_action_makes_pending_and_dead_deliveries_due_now(logged_in, tenant):
    world = outbox_world(tenant)
    mark = AuditEntry.objects.order_by("id").last().pk
    chosen = [world["dead_delivery"], world["pending_delivery"], world["broker_delivery"]]
    start = timezone.now()
    response = logged_in.post(
        url(Delivery, "changelist"), {"action": "retry_now", "_selected_action": [d.pk for d in chosen]}, follow=True
    )
    assert response.status_code == 200
    assert messages_of(response) == ["2 of 3 selected deliveries are due now; the others were already delivered."]
    rows = {d.pk: d for d in Delivery.objects.all()}
    dead, pending, broker = (rows[d.pk] for d in chosen)
    assert (dead.status, dead.attempts, pending.status, pending.attempts) == ("pending", 0, "pending", 3)
    assert start <= dead.next_attempt_at <= timezone.now()
    assert start <= pending.next_attempt_at <= timezone.now()
    assert (broker.status, broker.next_attempt_at) == ("delivered", world["broker_delivery"].next_attempt_at)
    assert OutboxMessage.objects.get(pk=world["dead"].pk).status == "dispatched"
    entries = AuditEntry.objects.filter(pk__gt=mark).order_by("id").values_list("action", "actor", "target_id")
    assert list(entries) == [
        ("delivery.retried", "user:anna", str(dead.pk)),
        ("delivery.retried", "user:anna", str(pending.pk)),
    ]


def test_outbox_and_delivery_pages_are_read_only(logged_in, tenant):
    world = outbox_world(tenant)
    assert logged_in.get(url(OutboxMessage, "add")).status_code == 403
    assert logged_in.get(url(Delivery, "add")).status_code == 403
    assert logged_in.get(url(Delivery, "delete", world["dead_delivery"].pk)).status_code == 403
    response = logged_in.post(url(Delivery, "change", world["dead_delivery"].pk), {"status": "delivered"})
    assert response.status_code == 403
    assert Delivery.objects.get(pk=world["dead_delivery"].pk).status == "dead"

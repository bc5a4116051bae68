"""Models moved out of ``events`` without touching their tables (the outbox's to ``outbox``, member
events and metrics to ``members``): a database created before the moves (as at the last commit before
them) migrates forward with its rows readable through the new models, and permissions granted on the
old content types still apply."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from members.models import MemberEvent, MetricDay
from outbox.models import Delivery, MemberSequence, OutboxMessage, WebhookSubscription

BEFORE_THE_MOVE = [("events", "0004_notification"), ("outbox", None)]


def _migrate(targets):
    """Migrate to ``targets``; the models as the database now stands (every applied migration)."""
    MigrationExecutor(connection).migrate(targets)
    loader = MigrationExecutor(connection).loader
    return loader.project_state(list(loader.applied_migrations)).apps


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_moves_keeps_its_rows_and_permissions():
    old = _migrate(BEFORE_THE_MOVE)
    tenant = old.get_model("tenancy", "Tenant").objects.create(slug="acme", name="Acme")
    message = old.get_model("events", "OutboxMessage").objects.create(
        tenant=tenant, type="tier.changed", member_id="ann", sequence=1, data={"tier": "gold"}, status="dispatched"
    )
    old.get_model("events", "MemberSequence").objects.create(tenant=tenant, member_id="ann", last_value=1)
    subscription = old.get_model("events", "WebhookSubscription").objects.create(
        tenant=tenant, url="https://hooks.example.com/x", secret="whsec_c2VjcmV0", event_types=["tier.changed"]
    )
    old.get_model("events", "HistoricalWebhookSubscription").objects.create(
        id=subscription.pk,
        tenant=tenant,
        url=subscription.url,
        event_types=[],
        created_at=timezone.now(),
        updated_at=timezone.now(),
        history_date=timezone.now(),
        history_type="+",
    )
    old.get_model("events", "Delivery").objects.create(
        tenant=tenant, message=message, destination="webhook", subscription=subscription, attempts=2
    )
    member = old.get_model("members", "Member").objects.create(tenant=tenant, external_id="ann")
    event = old.get_model("events", "MemberEvent").objects.create(
        tenant=tenant,
        member=member,
        source="pos",
        event_id="e1",
        type="transaction",
        occurred_at=timezone.now(),
        amount="12.50",
        body_hash="h",
        status="processed",
    )
    old.get_model("events", "MetricDay").objects.create(
        tenant=tenant, member=member, day=timezone.now().date(), metric="spend", value=125_000
    )
    old_type = old.get_model("contenttypes", "ContentType").objects.get_or_create(app_label="events", model="delivery")
    old.get_model("auth", "Permission").objects.get_or_create(
        content_type=old_type[0], codename="view_delivery", defaults={"name": "Can view delivery"}
    )

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    moved = OutboxMessage.objects.get(pk=message.pk)
    assert (moved.tenant.slug, moved.type, moved.member_id, moved.sequence, moved.data, moved.status) == (
        "acme",
        "tier.changed",
        "ann",
        1,
        {"tier": "gold"},
        "dispatched",
    )
    delivery = Delivery.objects.get()
    assert (delivery.message_id, delivery.subscription_id, delivery.attempts) == (message.pk, subscription.pk, 2)
    assert WebhookSubscription.objects.get().event_types == ["tier.changed"]
    assert WebhookSubscription.history.get().history_type == "+"
    assert MemberSequence.objects.get().last_value == 1
    permission = Permission.objects.get(codename="view_delivery")
    assert (permission.content_type.app_label, permission.content_type.model_class()) == ("outbox", Delivery)
    assert not ContentType.objects.filter(app_label="events", model="delivery").exists()
    stored = MemberEvent.objects.get()
    assert (stored.pk, stored.member.external_id, stored.ref, str(stored.amount)) == (
        event.pk,
        "ann",
        "pos:e1",
        "12.50",
    )
    assert (MetricDay.objects.get().metric, MetricDay.objects.get().value) == ("spend", 125_000)
    assert ContentType.objects.get_for_model(MemberEvent).app_label == "members"

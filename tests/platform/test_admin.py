"""The admin portal: scoped to the staff user's tenants, login throttled, every page renders."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit.models import AuditEntry
from outbox.models import OutboxMessage
from tests.factories import TenantFactory, TenantMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff_a(tenant):
    """A staff user of tenant acme with every permission on our apps' models."""
    user = UserFactory(username="anna")
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["tenancy", "audit", "events", "outbox"])
    )
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


def test_staff_user_sees_only_their_tenant(client, staff_a, tenant, other_tenant):
    client.force_login(staff_a)
    changelist = client.get(reverse("admin:tenancy_tenant_changelist"))
    assert changelist.status_code == 200
    assert list(changelist.context["cl"].queryset) == [tenant]
    assert client.get(reverse("admin:tenancy_tenant_change", args=[tenant.pk])).status_code == 200
    # Another tenant's object: the admin answers as if it did not exist (redirect to the index).
    response = client.get(reverse("admin:tenancy_tenant_change", args=[other_tenant.pk]))
    assert response.status_code == 302
    assert client.get(reverse("admin:tenancy_tenant_history", args=[other_tenant.pk])).status_code == 404
    version = other_tenant.history.first().history_id
    revert = reverse("admin:tenancy_tenant_simple_history", args=[other_tenant.pk, version])
    assert client.get(revert).status_code == 404


def test_staff_user_sees_only_their_tenants_audit_and_outbox(client, staff_a, tenant, other_tenant):
    from django.db import transaction

    from outbox.emit import emit

    mine = AuditEntry.objects.create(tenant=tenant, actor="system", action="mine")
    theirs = AuditEntry.objects.create(tenant=other_tenant, actor="system", action="theirs")
    with transaction.atomic():
        my_msg = emit(tenant=tenant, type="member.created", member_id="m1", data={})
        their_msg = emit(tenant=other_tenant, type="member.created", member_id="m1", data={})
    client.force_login(staff_a)
    audit = client.get(reverse("admin:audit_auditentry_changelist"))
    assert list(audit.context["cl"].queryset) == [mine]
    assert client.get(reverse("admin:audit_auditentry_change", args=[theirs.pk])).status_code == 302
    outbox = client.get(reverse("admin:outbox_outboxmessage_changelist"))
    assert list(outbox.context["cl"].queryset) == [my_msg]
    assert client.get(reverse("admin:outbox_outboxmessage_change", args=[their_msg.pk])).status_code == 302
    # The tenant filter offers only the user's own tenants.
    assert b"Globex" not in audit.content


def test_audit_entries_cannot_be_changed_in_the_admin_even_by_a_superuser(client, tenant):
    superuser = UserFactory(username="root", is_superuser=True)
    entry = AuditEntry.objects.create(tenant=tenant, actor="system", action="x")
    client.force_login(superuser)
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert client.get(reverse("admin:audit_auditentry_delete", args=[entry.pk])).status_code == 403
    response = client.post(reverse("admin:audit_auditentry_change", args=[entry.pk]), {"action": "tampered"})
    assert response.status_code == 403
    assert AuditEntry.objects.get().action == "x"


def test_staff_user_cannot_create_tenants(client, staff_a):
    client.force_login(staff_a)
    assert client.get(reverse("admin:tenancy_tenant_add")).status_code == 403


def test_tenant_edit_is_history_tracked_with_the_user(client, staff_a, tenant):
    client.force_login(staff_a)
    url = reverse("admin:tenancy_tenant_change", args=[tenant.pk])
    form = {
        "slug": tenant.slug,
        "name": "Acme Renamed",
        "timezone": "Europe/Paris",
        "currency": "EUR",
        "max_event_amount": "5000.00",
        "max_event_age_days": 30,
        "active": "on",
    }
    assert client.post(url, form).status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.timezone, tenant.currency) == ("Acme Renamed", "Europe/Paris", "EUR")
    latest = tenant.history.first()
    assert latest.history_user == staff_a
    assert latest.name == "Acme Renamed"


def test_tenant_form_rejects_bad_timezone_and_currency(client, staff_a, tenant):
    client.force_login(staff_a)
    url = reverse("admin:tenancy_tenant_change", args=[tenant.pk])
    response = client.post(
        url,
        {
            "slug": tenant.slug,
            "name": "x",
            "timezone": "Mars/Olympus",
            "currency": "usd",
            "max_event_amount": "1",
            "max_event_age_days": 1,
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"timezone", "currency"}


def test_every_registered_model_renders_for_a_superuser(client, tenant):
    """Smoke: changelist, add (where allowed) and history pages of every model we register."""
    superuser = UserFactory(username="root", is_superuser=True)
    client.force_login(superuser)
    AuditEntry.objects.create(tenant=tenant, actor="system", action="x")
    ours = [m for m in admin.site._registry if m._meta.app_label in {"tenancy", "audit", "events", "outbox"}]
    assert ours
    for model in ours:
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200, info
        obj = model._default_manager.first()
        if obj is not None:
            assert client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk])).status_code == 200, info
            assert client.get(reverse("admin:{}_{}_history".format(*info), args=[obj.pk])).status_code == 200, info


def test_outbox_message_detail_renders_its_envelope(client, tenant):
    from django.db import transaction

    from outbox.emit import emit

    superuser = UserFactory(username="root", is_superuser=True)
    with transaction.atomic():
        message = emit(tenant=tenant, type="tier.changed", member_id="m9", data={"to": "gold"})
    client.force_login(superuser)
    page = client.get(reverse("admin:outbox_outboxmessage_change", args=[message.pk]))
    assert page.status_code == 200
    assert b"&quot;to&quot;: &quot;gold&quot;" in page.content
    assert OutboxMessage.objects.count() == 1


def test_admin_login_is_throttled_after_repeated_failures(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="target", is_superuser=True)
    url = reverse("admin:login")
    for _ in range(3):
        client.post(url, {"username": "target", "password": "wrong", "next": "/admin/"})
    locked = client.post(url, {"username": "target", "password": PASSWORD, "next": "/admin/"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_admin_login_works_with_the_right_password(client):
    UserFactory(username="target", is_superuser=True)
    response = client.post(reverse("admin:login"), {"username": "target", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_other_tenant_staff_is_not_a_member(staff_a, other_tenant):
    from tenancy.selectors import tenants_for_user

    assert list(tenants_for_user(staff_a)) == [TenantFactory(slug="acme")]
    assert other_tenant not in tenants_for_user(staff_a)


def test_editing_a_tenant_is_audited_and_bumps_its_config_version(client, staff_a, tenant):
    client.force_login(staff_a)
    url = reverse("admin:tenancy_tenant_change", args=[tenant.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("on" if v is True else "" if v in (False, None) else v) for k, v in data.items()}
    version = tenant.config_version
    tenant.bump_config_version()  # a concurrent configuration save after the form was loaded
    response = client.post(url, data | {"timezone": "Asia/Tokyo"})
    assert response.status_code == 302, response.content[:500]
    tenant.refresh_from_db()
    assert (tenant.timezone, tenant.config_version) == ("Asia/Tokyo", version + 2)  # never taken back
    entry = AuditEntry.objects.get(action="tenant.updated")
    assert (entry.actor, entry.before["timezone"], entry.after["timezone"]) == (
        "user:anna",
        "Asia/Bangkok",
        "Asia/Tokyo",
    )

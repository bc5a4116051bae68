"""The audit primitive: entries written in the caller's transaction, append-only, filterable."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEntry
from audit.services import record_audit
from tests.factories import UserFactory
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit"


def test_post_records_an_entry_for_the_calling_service(api, tenant):
    body = {
        "action": "member.note",
        "target_type": "member",
        "target_id": "u-1",
        "member_id": "u-1",
        "before": {"note": ""},
        "after": {"note": "VIP"},
        "reason": "call centre",
    }
    response = api.post(URL, data=body, format="json")
    assert response.status_code == 201
    entry = AuditEntry.objects.get()
    assert (entry.tenant, entry.actor, entry.action, entry.source) == (tenant, "service:svc-test", "member.note", "api")
    assert (entry.before, entry.after, entry.reason, entry.member_id) == (
        {"note": ""},
        {"note": "VIP"},
        "call centre",
        "u-1",
    )
    assert response.json()["id"] == entry.id


def test_list_filters(api, tenant, other_tenant):
    now = timezone.now()
    old = AuditEntry.objects.create(
        tenant=tenant, actor="system", action="tier.changed", member_id="m1", at=now - timedelta(days=10)
    )
    new = AuditEntry.objects.create(tenant=tenant, actor="user:alice", action="tier.changed", member_id="m2", at=now)
    other = AuditEntry.objects.create(
        tenant=tenant,
        actor="system",
        action="points.applied",
        member_id="m1",
        target_type="points.pointtransaction",
        target_id="7",
        at=now,
    )
    AuditEntry.objects.create(tenant=other_tenant, actor="system", action="tier.changed", member_id="m1", at=now)

    def ids(**params):
        return [row["id"] for row in api.get(URL, params).json()["results"]]

    assert ids() == [other.id, new.id, old.id]
    assert ids(member_id="m1") == [other.id, old.id]
    assert ids(action="tier.changed") == [new.id, old.id]
    assert ids(target_type="points.pointtransaction", target_id="7") == [other.id]
    assert ids(actor="user:alice") == [new.id]
    assert ids(since=(now - timedelta(days=1)).isoformat()) == [other.id, new.id]
    assert ids(until=(now - timedelta(days=1)).isoformat()) == [old.id]


def test_list_paginates(api, tenant):
    AuditEntry.objects.bulk_create(AuditEntry(tenant=tenant, actor="system", action="a") for _ in range(7))
    page = api.get(URL, {"page_size": 3, "page": 2}).json()
    assert page["count"] == 7
    assert len(page["results"]) == 3
    assert page["next"].endswith("page=3&page_size=3")
    assert page["previous"].endswith("page_size=3")
    assert len(api.get(URL, {"page_size": 100000}).json()["results"]) == 7  # capped at 500, not an error


@pytest.mark.django_db(transaction=True)  # outside the test's own atomic block
def test_record_audit_refuses_to_run_outside_a_transaction(tenant):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record_audit(tenant=tenant, actor=None, action="x")
    assert AuditEntry.objects.count() == 0


def test_record_audit_rolls_back_with_the_change(tenant):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        record_audit(tenant=tenant, actor=None, action="x")
        1 / 0  # noqa: B018
    assert AuditEntry.objects.count() == 0


def test_record_audit_describes_actor_and_target(tenant):
    user = UserFactory(username="alice")
    with transaction.atomic():
        entry = record_audit(tenant=tenant, actor=user, action="tenant.updated", target=tenant, correlation_id="c-1")
    assert (entry.actor, entry.target_type, entry.target_id, entry.correlation_id) == (
        "user:alice",
        "tenancy.tenant",
        str(tenant.pk),
        "c-1",
    )


def test_orm_refuses_update_and_delete(tenant):
    entry = AuditEntry.objects.create(tenant=tenant, actor="system", action="x")
    entry.action = "y"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    assert AuditEntry.objects.get().action == "x"


@pytest.mark.postgres
def test_database_refuses_update_and_delete_on_postgres(tenant):
    entry = AuditEntry.objects.create(tenant=tenant, actor="system", action="x")
    for statement in (
        f"UPDATE audit_auditentry SET action = 'tampered' WHERE id = {entry.id}",
        f"DELETE FROM audit_auditentry WHERE id = {entry.id}",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(statement)
    # Queryset bulk operations go through the same SQL and are refused too.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get().action == "x"


def test_detail_of_another_tenants_entry_is_404(api_client_for, tenant, other_tenant):
    theirs = AuditEntry.objects.create(tenant=other_tenant, actor="system", action="x")
    assert_problem(api_client_for(tenant).get(f"{URL}/{theirs.id}"), 404, "not_found")
    assert api_client_for(other_tenant).get(f"{URL}/{theirs.id}").json()["action"] == "x"


def test_write_needs_audit_scope(api_client_for, tenant):
    client = api_client_for(tenant, "privilege:admin")
    assert_problem(client.post(URL, data={"action": "x"}, format="json"), 403, "insufficient_scope")
    assert AuditEntry.objects.count() == 0

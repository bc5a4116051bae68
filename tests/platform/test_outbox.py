"""The outbox primitive: messages in the caller's transaction with a gap-free per-member sequence."""

import threading

import pytest
from django.db import connection, transaction

from outbox.emit import emit
from outbox.models import OutboxMessage
from tests.factories import TenantFactory


def _emit(tenant, member_id="m1", type_="tier.changed", **data):
    with transaction.atomic():
        return emit(tenant=tenant, type=type_, member_id=member_id, data=data)


@pytest.mark.django_db
def test_emit_writes_a_message_with_envelope(tenant):
    message = _emit(tenant, tier="gold")
    envelope = message.envelope()
    assert envelope["type"] == "tier.changed"
    assert envelope["tenant"] == "acme"
    assert envelope["member_id"] == "m1"
    assert envelope["sequence"] == 1
    assert envelope["data"] == {"tier": "gold"}
    assert envelope["id"] == str(message.id)
    assert message.status == OutboxMessage.Status.PENDING


@pytest.mark.django_db
def test_sequence_is_per_member_and_per_tenant(tenant, other_tenant):
    seqs = [_emit(tenant, "m1").sequence for _ in range(3)]
    assert seqs == [1, 2, 3]
    assert _emit(tenant, "m2").sequence == 1
    assert _emit(other_tenant, "m1").sequence == 1
    assert _emit(tenant, "m1").sequence == 4


@pytest.mark.django_db(transaction=True)  # outside the test's own atomic block
def test_emit_outside_a_transaction_is_refused(tenant):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        emit(tenant=tenant, type="tier.changed", member_id="m1", data={})
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db
def test_unknown_type_is_refused(tenant):
    with pytest.raises(ValueError, match="Unknown message type"), transaction.atomic():
        emit(tenant=tenant, type="tier.exploded", member_id="m1", data={})


@pytest.mark.django_db
def test_rollback_leaves_no_message_and_no_sequence_gap(tenant):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        emit(tenant=tenant, type="tier.changed", member_id="m1", data={})
        1 / 0  # noqa: B018
    assert OutboxMessage.objects.count() == 0
    assert _emit(tenant).sequence == 1


@pytest.mark.django_db
def test_correlation_id_comes_from_the_request_context(tenant):
    from config.tracing import request_id_context

    with request_id_context("req-42"):
        assert _emit(tenant).correlation_id == "req-42"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_emits_for_one_member_get_distinct_gapless_sequences():
    tenant = TenantFactory(slug="concurrent")
    threads_n = 20
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            _emit(tenant, "hot-member")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = sorted(OutboxMessage.objects.filter(member_id="hot-member").values_list("sequence", flat=True))
    assert seqs == list(range(1, threads_n + 1))

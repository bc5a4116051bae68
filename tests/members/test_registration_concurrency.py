"""Concurrent registration of one external_id creates exactly one member (PostgreSQL, threads)."""

import threading

import pytest
from django.db import connection

from events.registration import register_member
from members.models import Member
from members.services import Registration
from outbox.models import OutboxMessage
from tests.factories import TenantFactory, hotel_ladder
from tiers.models import MemberTierAssignment


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_registration_of_one_external_id_creates_one_member():
    tenant = TenantFactory(slug="race")
    hotel_ladder(tenant)
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    outcomes: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def register() -> None:
        try:
            barrier.wait()
            _, created = register_member(
                tenant=tenant, registration=Registration(external_id="same", email="s@x.com"), actor="test"
            )
            with lock:
                outcomes.append(created)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(outcomes) == [False] * (threads_n - 1) + [True]
    assert Member.objects.filter(tenant=tenant, external_id="same").count() == 1
    assert MemberTierAssignment.objects.filter(member__external_id="same").count() == 1
    assert OutboxMessage.objects.filter(tenant=tenant, type="member.created").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_conflicting_registrations_leave_one_winner():
    tenant = TenantFactory(slug="race2")
    barrier = threading.Barrier(8)
    results: list[str] = []
    lock = threading.Lock()

    def register(i: int) -> None:
        from members.services import MemberConflict

        try:
            barrier.wait()
            register_member(tenant=tenant, registration=Registration(external_id="x", name=f"n{i}"), actor="t")
            outcome = "ok"
        except MemberConflict:
            outcome = "conflict"
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 7 + ["ok"]
    assert Member.objects.filter(tenant=tenant).count() == 1

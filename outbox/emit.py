"""The transactional outbox primitive: services call :func:`emit` inside their transaction; the message
commits with the change or not at all; once it commits, the relay (``outbox.relay``) is kicked
(``outbox.tasks.kick``) to deliver it."""

from datetime import datetime
from typing import Any

from django.db import connection, transaction

from config.tracing import current_request_id
from outbox.models import MESSAGE_TYPES, MemberSequence, OutboxMessage
from outbox.tasks import kick
from tenancy.models import Tenant


def _take_sequence_sql() -> str:
    table = MemberSequence._meta.db_table
    return (
        f"INSERT INTO {table} (tenant_id, member_id, last_value) VALUES (%s, %s, 1) "  # noqa: S608
        f"ON CONFLICT (tenant_id, member_id) DO UPDATE SET last_value = {table}.last_value + 1 "
        "RETURNING last_value"
    )


def next_sequence(*, tenant: Tenant, member_id: str) -> int:
    """The next per-member sequence number, taken with one atomic upsert (no read-check-write).

    Concurrent callers for the same member serialise on the counter row and each gets a distinct,
    gap-free number in commit order of the counter update.
    """
    with connection.cursor() as cursor:
        cursor.execute(_take_sequence_sql(), [tenant.pk, member_id])
        return int(cursor.fetchone()[0])


def _insert_with_sequence(message: OutboxMessage) -> None:
    """PostgreSQL: take the member's next sequence number and insert the message in one round trip
    (a data-modifying CTE; the same upsert as :func:`next_sequence`, so the same ordering guarantees)."""
    meta = OutboxMessage._meta
    columns, values, params = [], [], []
    for field in meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.name == "sequence":
            values.append("(SELECT last_value FROM seq)")
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(message, add=True), connection))
    sql = (
        f"WITH seq AS ({_take_sequence_sql()}) "  # noqa: S608 - names from the model, values as parameters
        f"INSERT INTO {meta.db_table} ({', '.join(columns)}) VALUES ({', '.join(values)}) RETURNING sequence"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [message.tenant_id, message.member_id, *params])
        message.sequence = int(cursor.fetchone()[0])
    message._state.adding, message._state.db = False, connection.alias


def emit(
    *,
    tenant: Tenant,
    type: str,  # noqa: A002 - the field is called "type" in DOMAIN §8
    data: dict[str, Any],
    member_id: str = "",
    occurred_at: datetime | None = None,
    correlation_id: str | None = None,
) -> OutboxMessage:
    """Write one outbox message in the caller's transaction (raises outside of one)."""
    if type not in MESSAGE_TYPES:
        raise ValueError(f"Unknown message type {type!r}; known: {', '.join(MESSAGE_TYPES)}.")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("emit() must be called inside the transaction of the change it announces.")
    message = OutboxMessage(
        tenant=tenant,
        type=type,
        member_id=member_id,
        correlation_id=current_request_id() if correlation_id is None else correlation_id,
        data=data,
    )
    if occurred_at is not None:
        message.occurred_at = occurred_at
    if connection.vendor == "postgresql":
        _insert_with_sequence(message)
    else:  # SQLite cannot modify data in a WITH clause: two statements
        message.sequence = next_sequence(tenant=tenant, member_id=member_id)
        message.save(force_insert=True)
    _kick_relay_on_commit()
    return message


def _kick_relay_on_commit() -> None:
    """One relay kick per outermost transaction, however many messages it writes."""
    connection = transaction.get_connection()
    if not any(callback is kick for _, callback, _ in connection.run_on_commit):
        transaction.on_commit(kick, robust=True)

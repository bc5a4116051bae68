"""Database helpers that are not about one app: the advisory lock that keeps periodic jobs single, and
an insert that yields to an existing row instead of raising."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, connections, models, router
from django.db.models import sql
from django.db.models.constants import OnConflict


@contextmanager
def advisory_lock(name: str) -> Iterator[bool]:
    """Try to take a session-level PostgreSQL advisory lock named ``name``; yields whether it was taken.

    A second beat (or a manual run of the same command) finds it taken and skips the run. Other
    databases have no such lock: the embedded default runs one process, so it yields True.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def insert_unless_taken(obj: models.Model) -> bool:
    """Insert ``obj`` unless a row already holds one of its unique keys, in one statement
    (``INSERT ... ON CONFLICT DO NOTHING RETURNING pk``; PostgreSQL and SQLite ≥ 3.35). Returns whether it
    was inserted; if so ``obj`` has its primary key and is saved, like after ``save(force_insert=True)``.

    The idempotency check folded into the insert: no read before it, and no savepoint to catch an
    ``IntegrityError`` in. Signals are not sent (no model of ours listens to them on insert)."""
    meta = obj._meta
    query = sql.InsertQuery(type(obj), on_conflict=OnConflict.IGNORE)
    query.insert_values([f for f in meta.concrete_fields if f is not meta.pk], [obj], raw=False)
    using = router.db_for_write(type(obj), instance=obj)
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk]
    ((statement, params),) = compiler.as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding, obj._state.db = False, using
    return True

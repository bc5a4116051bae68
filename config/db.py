"""Database helpers that are not about one app: the advisory lock that keeps periodic jobs single."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


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

"""The advisory lock that keeps periodic jobs single (PostgreSQL)."""

import threading

import pytest
from django.db import connection

from config.db import advisory_lock


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_advisory_lock_is_exclusive_across_connections():
    inside, release = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def holder() -> None:
        with advisory_lock("job") as acquired:
            seen["holder"] = acquired
            inside.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    inside.wait(10)
    with advisory_lock("job") as acquired:
        seen["second"] = acquired
    with advisory_lock("other-job") as acquired:
        seen["other"] = acquired
    release.set()
    thread.join()
    with advisory_lock("job") as acquired:
        seen["after"] = acquired
    assert seen == {"holder": True, "second": False, "other": True, "after": True}

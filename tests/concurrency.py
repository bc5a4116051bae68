"""Running work from many threads released together (concurrency tests on PostgreSQL)."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def race(threads: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i in range(threads), all released by one barrier; each thread closes its
    database connection. Returns the results (or the exceptions raised), in completion order."""
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcome = work(index)
        except BaseException as exc:  # noqa: BLE001 - returned to the test, which asserts on it
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results

"""Real transactions at the same moment: each worker runs in a thread of its own (its own
database connection), all released by one barrier, for the PostgreSQL proofs of lock orders
and counters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_concurrently(workers: list[Callable[[], Any]], *, timeout: float = 120) -> None:
    """Run every worker at once; re-raise what any of them raised (a deadlock, a lost
    update caught by an assertion) in the caller's thread."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def target(work: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not errors, errors

"""200 agents' waits against `manage.py serve` in both modes: the embedded default as `make
run` starts it (SQLite, the filesystem broker, two web workers), and the stack as `make
run-stack` does (PostgreSQL and Redis: LISTEN/NOTIFY wakes the web workers, Celery on Redis
indexes). 100 long-polls and 100 event streams from 20 agents stay open while another agent
lists its inbox, and a mail sent over SMTP to a waiting agent reaches its long-polls and its
streams (issue 24). When each wait held one of the web server's 2 x 4 threads, the lister's
requests queued behind 60 s waits and the mail reached the waits tens of seconds late.

How fast (the lister's p99 against its idle figure, each wait's wake-up time) is measured by
bench/waiters.py, not here: on a shared machine one slow sample in a hundred is noise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench._common import send_one
from bench._waiters import LONG_POLLS, STREAMS, WAITS, Waiters, inbox_times, waiting_agents
from tests.reliability.procs import engines_installed, serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NO_ENGINES = pytest.mark.skipif(not engines_installed(), reason="serve --stack needs postgresql and redis-server")

# Far below the waits' 60 s, far above any healthy figure (tens of milliseconds).
STARVED = 5.0


@pytest.fixture(params=["embedded", pytest.param("stack", marks=NO_ENGINES)])
def service(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    with serve(stack=request.param == "stack") as served:
        yield {"base": served.base, "smtp": served.smtp_port, "agents": waiting_agents(served)}


def test_200_waiting_agents_starve_nobody_and_are_all_woken(service: dict[str, Any]) -> None:
    base, agents = service["base"], service["agents"]
    lister = agents["lister"][0]

    waiters = Waiters(base, agents, subject="wake up")
    try:
        waiters.wait_open()
        time.sleep(1)
        loaded = inbox_times(base, lister)
        still_open = waiters.open
        accepted = send_one(service["smtp"], agents["waiter0"][1], "wake up")
        waiters.wait_seen(timeout=STARVED)
    finally:
        waiters.stop()

    print(f"slowest inbox {max(loaded):.3f} s; wakes {sorted(at - accepted for at in waiters.seen.values())}")
    assert waiters.errors == []
    assert still_open == WAITS, (sorted(waiters.unanswered), waiters.reconnects)
    # Every one of the lister's 100 requests was served while 200 waits were open.
    assert max(loaded) < STARVED, loaded
    # Every wait of the agent sent to saw the mail, none by running out its 60 s.
    assert len(waiters.seen) == LONG_POLLS + STREAMS, waiters.seen

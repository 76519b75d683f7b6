"""The per-token rate limit (``API_RATE_LIMIT``, assmbl/throttling.py) holds across every
web process: gunicorn with two workers, hammered by many clients at once, lets through at
most the limit, whether the count lives in Redis (the stack) or in the embedded store."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.reliability.procs import ROOT, child_env, stop, wait_for_port

LIMIT = 40
PERIOD = 3600  # "/hour": one window for the whole test, unless it straddles an hour
CLIENTS = 16
REQUESTS = 3 * LIMIT

pytestmark = pytest.mark.timeout(180)


def _window() -> int:
    return int(time.time() // PERIOD)


def _hammer(port: int, token: str) -> tuple[Counter[int], list[httpx.Response]]:
    statuses: Counter[int] = Counter()
    refused: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            start.wait()
            for _ in range(n, REQUESTS, CLIENTS):
                response = http.get("/v1/inbox/unread-count")
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 429:
                        refused.append(response)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, refused


@pytest.mark.parametrize("store", ["embedded", "redis"])
def test_two_web_processes_together_let_through_at_most_the_limit(
    transactional_db: Any, tmp_path: Path, owner: Any, store: str
) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    env = child_env(tmp_path, API_RATE_LIMIT=f"{LIMIT}/hour", LOG_LEVEL="WARNING")
    env.pop("CACHE_URL", None)
    if store == "redis":
        url = os.environ.get("TEST_REDIS_URL", "").strip()
        if not url:
            pytest.skip("TEST_REDIS_URL is not set (scripts/redis.sh start DIR PORT)")
        env["CACHE_URL"] = url
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "assmbl.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-k", "gthread", "-w", "2", "--threads", "8"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, web, timeout=60)
        before = _window()
        statuses, refused = _hammer(port, owner.token)
        windows = _window() - before + 1
    finally:
        stop(web)

    assert set(statuses) <= {200, 429} and sum(statuses.values()) == REQUESTS
    assert statuses[200] <= LIMIT * windows
    assert statuses[200] >= LIMIT  # the limit, not fewer: each process counts into one store
    body = refused[0].json()
    assert body["error"]["code"] == "rate_limited" and set(body["error"]) == {"code", "message", "details"}
    assert 1 <= int(refused[0].headers["Retry-After"]) <= PERIOD

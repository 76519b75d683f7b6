"""Item 9: the list and search endpoints at concurrency 32 on loopback, against gunicorn
(gthread, 2 workers x 8 threads) and a seeded mailbox: counts, p50/p95/p99, 0 errors.

LOAD_SECONDS (default 20, to keep CI fast; the issue's figure is 60) bounds the run.
No speed is asserted: the figures are printed (and written to LOAD_FIGURES_FILE) for
docs/RELIABILITY.md; the assertion is that every response is a 2xx with the right shape.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from mail.models import Message
from tests.conftest import free_port
from tests.factories import MessageFactory
from tests.reliability.procs import ROOT, child_env, gunicorn_wsgi, stop, wait_for_port

CONCURRENCY = 32
SEED_MESSAGES = 3000
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "20"))
FIGURES_FILE = os.environ.get("LOAD_FIGURES_FILE", "")

pytestmark = pytest.mark.timeout(300)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


def test_list_and_search_hold_at_concurrency_32_with_no_errors(
    transactional_db: Any, tmp_path: Path, owner: Any
) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    Message.objects.bulk_create(MessageFactory.build_batch(SEED_MESSAGES, agent=owner.agent), batch_size=500)
    port = free_port()
    env = child_env(tmp_path, DB_CONN_MAX_AGE="60", LOG_LEVEL="WARNING", API_RATE_LIMIT="1000000/min")
    web = subprocess.Popen(
        gunicorn_wsgi(port, "--backlog", "256", "--no-control-socket"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Half the clients page through the inbox, half search it (a common and a rare term).
    paths = ["/v1/inbox?limit=20", "/v1/inbox?limit=50", "/v1/inbox?q=number%2042", "/v1/inbox?q=example.com&limit=20"]
    latencies: dict[str, list[float]] = {"list": [], "search": []}
    statuses: Counter[str] = Counter()
    bad: list[str] = []
    lock = threading.Lock()
    try:
        wait_for_port(port, web, timeout=60)

        def client(n: int) -> None:
            path = paths[n % len(paths)]
            kind = "search" if "q=" in path else "list"
            mine: list[float] = []
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {owner.token}"}
            ) as http:
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    try:
                        response = http.get(path)
                        status = str(response.status_code)
                        ok = response.status_code == 200 and isinstance(response.json().get("items"), list)
                    except (httpx.HTTPError, ValueError) as exc:
                        status, ok = type(exc).__name__, False
                    mine.append((time.perf_counter() - t0) * 1000)
                    with lock:
                        statuses[status] += 1
                        if not ok and len(bad) < 5:
                            bad.append(f"{path}: {status}")
            with lock:
                latencies[kind].extend(mine)

        # Warm both workers (imports, connections) before the clock starts.
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {owner.token}"}) as http:
            for _ in range(8):
                assert http.get(f"http://127.0.0.1:{port}{paths[0]}").status_code == 200
        started = time.monotonic()
        deadline = started + LOAD_SECONDS
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        stop(web)

    figures: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "concurrency": CONCURRENCY,
        "seeded": SEED_MESSAGES,
        "statuses": dict(statuses),
    }
    for kind, values in latencies.items():
        figures[kind] = {
            "requests": len(values),
            "per_second": round(len(values) / elapsed, 1),
            "p50_ms": round(_percentile(values, 50), 1),
            "p95_ms": round(_percentile(values, 95), 1),
            "p99_ms": round(_percentile(values, 99), 1),
        }
    print("\nload figures:", json.dumps(figures))
    if FIGURES_FILE:
        Path(FIGURES_FILE).write_text(json.dumps(figures, indent=2))
    assert not bad, bad
    assert set(statuses) == {"200"}
    assert figures["list"]["requests"] > 0 and figures["search"]["requests"] > 0

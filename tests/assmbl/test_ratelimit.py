"""assmbl/ratelimit.py: the counters behind the API's rate limit, in each store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from assmbl.ratelimit import RedisCounter, SqliteCounter, WindowCounter, window_hit


@pytest.fixture(params=["sqlite", "redis"])
def counter(request: Any, tmp_path: Path) -> WindowCounter:
    if request.param == "sqlite":
        return SqliteCounter(str(tmp_path / "ratelimit.sqlite3"))
    url = os.environ.get("TEST_REDIS_URL", "").strip()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (scripts/redis.sh start DIR PORT)")
    return RedisCounter(url)


def test_it_counts_each_window_on_its_own(counter: WindowCounter) -> None:
    key = f"test:{os.getpid()}:{id(counter)}"

    counts = [counter.hit(key, window=7, ttl=60) for _ in range(3)]

    assert counts == [1, 2, 3]
    assert counter.hit(key, window=8, ttl=60) == 1
    assert counter.hit(f"{key}:other", window=8, ttl=60) == 1


def test_it_says_when_the_window_ends(settings: Any, tmp_path: Path) -> None:
    settings.CACHE_URL, settings.RATE_LIMIT_DB = "", tmp_path / "ratelimit.sqlite3"

    first = window_hit(key="k", period=60, now=6000.0 + 45.5)
    second = window_hit(key="k", period=60, now=6000.0 + 50)

    assert (first.count, first.reset_in) == (1, 14.5)
    assert (second.count, second.reset_in) == (2, 10)


def test_it_lets_requests_through_when_the_store_is_unreachable(settings: Any) -> None:
    settings.CACHE_URL = "redis://127.0.0.1:9/0"  # discard port: nothing answers

    hit = window_hit(key="k", period=60, now=6030.0)

    assert hit.count == 0 and hit.reset_in == 30

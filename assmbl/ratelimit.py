"""Request counters in a store every web process shares: the seam behind the API's per-token
rate limit (``assmbl.throttling``).

DRF's own throttle keeps a list of timestamps in the cache and writes it back (get, append,
set): two processes that read the same list each write their own, so hits are lost, and with
the in-process cache each gunicorn worker counts alone. Here a hit is one atomic increment:

- Redis (``CACHE_URL=redis://...``, the stack): INCR and EXPIRE in one MULTI;
- otherwise (embedded): one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` in a small
  SQLite file (``RATE_LIMIT_DB``, in ``DATA_DIR``) that every local process opens; SQLite's
  write lock makes it atomic. It is not the service's database, so API traffic never queues
  behind ingestion's writes for it.

A window is ``period`` seconds aligned to the epoch (for ``/min``: each clock minute). Each
window lets ``limit`` requests through; a client that spends its limit at the end of one
window and again at the start of the next gets twice the limit within one period: the price
of one counter per token instead of a timestamp per request.

If the store cannot be reached, requests pass (and a warning is logged): a rate limiter must
not take the API down with it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import redis
from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    count: int  # hits in this window, this one included
    reset_in: float  # seconds until the window ends


class WindowCounter(Protocol):
    def hit(self, key: str, *, window: int, ttl: int) -> int:
        """Count one hit of ``key`` in ``window`` atomically across every process that
        shares the store, and return the window's count including it. ``ttl``: seconds the
        count must outlive the window's start."""
        ...


class RedisCounter:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def hit(self, key: str, *, window: int, ttl: int) -> int:
        name = f"assmbl:ratelimit:{key}:{window}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(name)
        pipe.expire(name, ttl)
        count, _ = pipe.execute()
        return int(count)


class SqliteCounter:
    """One row per key: the current window and its count. A connection per thread (and per
    process: a forked worker opens its own)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
            connection = sqlite3.connect(self._path, timeout=10, isolation_level=None)
            # Counters need not survive a power cut: no fsync per hit.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS ratelimit_hits"
                " (key TEXT PRIMARY KEY, bucket INTEGER NOT NULL, count INTEGER NOT NULL)"
            )
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def hit(self, key: str, *, window: int, ttl: int) -> int:
        # SET's right-hand sides read the row as it was: a new window starts again at 1.
        row = (
            self._connection()
            .execute(
                "INSERT INTO ratelimit_hits (key, bucket, count) VALUES (?, ?, 1)"
                " ON CONFLICT (key) DO UPDATE SET"
                " count = CASE WHEN bucket = excluded.bucket THEN count + 1 ELSE 1 END,"
                " bucket = excluded.bucket"
                " RETURNING count",
                (key, window),
            )
            .fetchone()
        )
        return int(row[0])


@lru_cache(maxsize=4)
def _counter(cache_url: str, db_path: str) -> WindowCounter:
    if cache_url.startswith(("redis://", "rediss://")):
        return RedisCounter(cache_url)
    return SqliteCounter(db_path)


def window_hit(*, key: str, period: int, now: float) -> Hit:
    """Count a request of ``key`` in the ``period``-second window holding ``now``."""
    window = int(now // period)
    reset_in = (window + 1) * period - now
    counter = _counter(settings.CACHE_URL, str(settings.RATE_LIMIT_DB))
    try:
        count = counter.hit(f"{key}:{period}", window=window, ttl=period + 1)
    except (redis.RedisError, sqlite3.Error):
        log.warning("rate limit store unavailable; letting the request through", exc_info=True)
        return Hit(count=0, reset_in=reset_in)
    return Hit(count=count, reset_in=reset_in)


# --- Leases: how many of a kind a key holds at once (the concurrent waits of a token) -------------
# A lease is taken when a wait starts and given back when it ends; one whose holder died
# (a killed web process) lapses after its ttl, so a cap never stays spent.


class LeaseStore(Protocol):
    def take(self, key: str, member: str, *, cap: int, until: float, now: float) -> bool:
        """Hold ``member`` under ``key`` until ``until`` if fewer than ``cap`` unexpired
        leases are held there; atomically across every process that shares the store."""
        ...

    def give_back(self, key: str, member: str) -> None: ...


class RedisLeases:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def take(self, key: str, member: str, *, cap: int, until: float, now: float) -> bool:
        name = f"assmbl:leases:{key}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(name, "-inf", now)
        pipe.zadd(name, {member: until})
        pipe.zcard(name)
        pipe.expire(name, int(until - now) + 1)
        held = int(pipe.execute()[2])
        if held > cap:
            self._redis.zrem(name, member)
            return False
        return True

    def give_back(self, key: str, member: str) -> None:
        self._redis.zrem(f"assmbl:leases:{key}", member)


class SqliteLeases(SqliteCounter):
    def _leases(self) -> sqlite3.Connection:
        connection = self._connection()
        connection.execute(
            "CREATE TABLE IF NOT EXISTS leases (key TEXT NOT NULL, member TEXT NOT NULL, until REAL NOT NULL,"
            " PRIMARY KEY (key, member))"
        )
        return connection

    def take(self, key: str, member: str, *, cap: int, until: float, now: float) -> bool:
        connection = self._leases()
        # IMMEDIATE: the count and the insert under one write lock.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM leases WHERE key = ? AND until < ?", (key, now))
            (held,) = connection.execute(
                "SELECT count(*) FROM leases WHERE key = ? AND member != ?", (key, member)
            ).fetchone()
            if held >= cap:
                return False
            connection.execute(
                "INSERT OR REPLACE INTO leases (key, member, until) VALUES (?, ?, ?)", (key, member, until)
            )
            return True
        finally:
            connection.execute("COMMIT")

    def give_back(self, key: str, member: str) -> None:
        self._leases().execute("DELETE FROM leases WHERE key = ? AND member = ?", (key, member))


@lru_cache(maxsize=4)
def _leases(cache_url: str, db_path: str) -> LeaseStore:
    if cache_url.startswith(("redis://", "rediss://")):
        return RedisLeases(cache_url)
    return SqliteLeases(db_path)


def lease_take(*, key: str, member: str, cap: int, ttl: float, now: float) -> bool:
    """Hold one of ``cap`` leases of ``key`` for ``ttl`` seconds (taking it again renews it).
    If the store cannot be reached the lease is granted, as a hit is counted."""
    try:
        return _leases(settings.CACHE_URL, str(settings.RATE_LIMIT_DB)).take(
            key, member, cap=cap, until=now + ttl, now=now
        )
    except (redis.RedisError, sqlite3.Error):
        log.warning("lease store unavailable; granting the lease", exc_info=True)
        return True


def lease_give_back(*, key: str, member: str) -> None:
    try:
        _leases(settings.CACHE_URL, str(settings.RATE_LIMIT_DB)).give_back(key, member)
    except (redis.RedisError, sqlite3.Error):
        log.warning("lease store unavailable; the lease lapses on its own", exc_info=True)

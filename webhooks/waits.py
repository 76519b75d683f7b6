"""Waiting for events without holding a thread: the long-poll (``GET /v1/events?wait=``) and
the event stream (``GET /v1/events/stream``) under the ASGI server (assmbl/asgi.py).

The sync view does everything a request needs but the waiting (authentication, throttling,
validation, the first read of the log, the per-token cap on concurrent waits); when there
is nothing to return yet it hands back a ``Deferred`` on its response. The ASGI layer then
awaits here, on the event loop: one ``asyncio.Event`` per waiter, set by the process's wake
listener (``assmbl.wakeup``: PostgreSQL NOTIFY, or a unix datagram) when the waiter's agent
has new events, and a slow fallback look every ``FALLBACK_POLL_SECONDS``. A woken waiter
reads the log once (in a thread); 200 idle waiters cost 200 small objects, not 200 threads
or 200 pollers.

On PostgreSQL an event is readable at once unless another transaction recording events is
in flight; then only ``WEBHOOKS_EVENTS_VISIBILITY_LAG_MS`` after it was written
(webhooks/events.py says why), and a waiter told so (``pending``) looks again shortly.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

from assmbl import domain
from assmbl.ratelimit import lease_give_back, lease_take
from assmbl.wakeup import wake_listen
from directory.models import Agent
from webhooks.events import Cursor, Page, event_item, events_page, visibility_lag

# Without a signal a waiter still looks this often: a signal can be lost (a full socket
# buffer), and the listener's reconnect wakes every waiter itself.
FALLBACK_POLL_SECONDS = 30.0
HEARTBEAT_SECONDS = 15.0
# How often a signalled waiter looks again while the event is younger than the lag.
RECHECK_SECONDS = 0.1
# An SSE lease is renewed at every heartbeat; it lapses this long after its last renewal.
STREAM_LEASE_SECONDS = 60.0
# In the environ of a request served by assmbl/asgi.py: the view may defer its wait.
ASYNC_WAITS = "assmbl.async_waits"

T = TypeVar("T")


class TooManyWaits(domain.TooMany):
    code = "too_many_waits"
    default_message = "This token already has as many waiting requests (long-polls and streams) open as it may."


@dataclass
class Deferred:
    """A wait the view hands to the ASGI layer: whose, from where, how long, and its lease."""

    agent: Agent
    after: Cursor | None
    limit: int
    seconds: float
    lease_key: str
    lease: str
    stream: bool = False


def wait_begin(
    *, token_prefix: str, agent: Agent, after: Cursor | None, limit: int, seconds: float, stream: bool = False
) -> Deferred:
    """Take one of the token's WAITS_PER_TOKEN leases (or raise TooManyWaits, 429)."""
    key, lease = f"waits:{token_prefix}", uuid.uuid4().hex
    ttl = STREAM_LEASE_SECONDS if stream else seconds + 30
    if not lease_take(key=key, member=lease, cap=settings.WAITS_PER_TOKEN, ttl=ttl, now=time.time()):
        raise TooManyWaits(retry_after=5, details={"max_waits": settings.WAITS_PER_TOKEN})
    return Deferred(agent=agent, after=after, limit=limit, seconds=seconds, lease_key=key, lease=lease, stream=stream)


def _in_thread(fn: Callable[[], T]) -> Callable[[], T]:
    def run() -> T:
        close_old_connections()
        try:
            return fn()
        finally:
            close_old_connections()

    return run


@dataclass
class Hub:
    """This process's waiters, by agent; the wake listener runs while any process lives."""

    waiters: dict[int, set[asyncio.Event]] = field(default_factory=dict)
    listener: asyncio.Task[None] | None = None

    def wake(self, agent_pk: int | None) -> None:
        """Wake the agent's waiters; None: every waiter (signals may have been missed)."""
        held = self.waiters.get(agent_pk, ()) if agent_pk is not None else [e for s in self.waiters.values() for e in s]
        for event in held:
            event.set()

    def register(self, agent_pk: int) -> asyncio.Event:
        if self.listener is None or self.listener.done():
            self.listener = asyncio.get_running_loop().create_task(wake_listen(self.wake))
        event = asyncio.Event()
        self.waiters.setdefault(agent_pk, set()).add(event)
        return event

    def unregister(self, agent_pk: int, event: asyncio.Event) -> None:
        held = self.waiters.get(agent_pk)
        if held is not None:
            held.discard(event)
            if not held:
                del self.waiters[agent_pk]


HUB = Hub()


async def _read(pool: Executor, deferred: Deferred, after: Cursor | None) -> Page:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        pool, _in_thread(lambda: events_page(agent=deferred.agent, after=after, limit=deferred.limit))
    )


async def _next_page(
    pool: Executor, deferred: Deferred, after: Cursor | None, signal: asyncio.Event, until: float
) -> Page:
    """The next non-empty page after ``after``, or an empty one at ``until`` (monotonic)."""
    lag = visibility_lag().total_seconds()
    woken_at: float | None = None
    while True:
        signal.clear()
        page = await _read(pool, deferred, after)
        left = until - time.monotonic()
        if page.events or left <= 0:
            return page
        if page.pending or (woken_at is not None and time.monotonic() - woken_at < lag + RECHECK_SECONDS):
            # There is an event (or a signal said so) readable only once the lag has passed.
            await asyncio.sleep(min(RECHECK_SECONDS, left))
            continue
        woken_at = time.monotonic() if await _signalled(signal, min(left, FALLBACK_POLL_SECONDS)) else None


async def wait_page(pool: Executor, deferred: Deferred, disconnected: Awaitable[Any]) -> dict[str, Any] | None:
    """The long-poll's answer (None when the client went away first); the lease is given back."""
    signal = HUB.register(deferred.agent.pk)
    try:
        waiting = asyncio.ensure_future(
            _next_page(pool, deferred, deferred.after, signal, time.monotonic() + deferred.seconds)
        )
        gone = asyncio.ensure_future(disconnected)
        done, _ = await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiting, gone):
            if task not in done:
                task.cancel()
        if waiting not in done:
            return None
        page = waiting.result()
        return {
            "items": [event_item(e) for e in page.events],
            "next_cursor": page.next_cursor,
            "has_more": page.has_more,
        }
    finally:
        HUB.unregister(deferred.agent.pk, signal)
        await asyncio.get_running_loop().run_in_executor(
            pool, lambda: lease_give_back(key=deferred.lease_key, member=deferred.lease)
        )


def sse_event(item: dict[str, Any], cursor: str) -> bytes:
    """One event of the stream: its id is the cursor just past it, so a client that
    reconnects with ``Last-Event-ID`` resumes right after the last event it got."""
    return f"id: {cursor}\nevent: {item['type']}\ndata: {json.dumps(item, separators=(',', ':'))}\n\n".encode()


async def _signalled(signal: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(signal.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False


async def stream_events(pool: Executor, deferred: Deferred) -> AsyncGenerator[bytes, None]:
    """The event stream: every event after the cursor, then each new one as it comes; a
    heartbeat comment when quiet (no read), the lease renewed every half of its life."""
    loop = asyncio.get_running_loop()
    signal = HUB.register(deferred.agent.pk)
    after, renewed, lag = deferred.after, time.monotonic(), visibility_lag().total_seconds()
    try:
        yield f"retry: 2000\n: {settings.WAITS_PER_TOKEN} waits per token\n\n".encode()
        while True:
            signal.clear()
            page = await _read(pool, deferred, after)
            for event in page.events:
                after = Cursor(event.seq, int(event.created_at.timestamp() * 1000))
                yield sse_event(event_item(event), after.encode())
            if page.has_more:
                continue
            if page.pending:
                await asyncio.sleep(RECHECK_SECONDS)  # readable once the lag has passed
                continue
            quiet = 0.0
            while not await _signalled(signal, HEARTBEAT_SECONDS) and quiet < FALLBACK_POLL_SECONDS:
                quiet += HEARTBEAT_SECONDS
                yield b": heartbeat\n\n"
                if time.monotonic() - renewed > STREAM_LEASE_SECONDS / 2:
                    renewed = time.monotonic()
                    await loop.run_in_executor(pool, lambda: _renew(deferred))
            if signal.is_set() and lag:
                # Readable once the lag has passed: look until it is.
                page = await _next_page(pool, deferred, after, signal, time.monotonic() + lag + RECHECK_SECONDS)
                for event in page.events:
                    after = Cursor(event.seq, int(event.created_at.timestamp() * 1000))
                    yield sse_event(event_item(event), after.encode())
    finally:
        HUB.unregister(deferred.agent.pk, signal)
        await loop.run_in_executor(pool, lambda: lease_give_back(key=deferred.lease_key, member=deferred.lease))


def _renew(deferred: Deferred) -> None:
    lease_take(
        key=deferred.lease_key,
        member=deferred.lease,
        cap=settings.WAITS_PER_TOKEN,
        ttl=STREAM_LEASE_SECONDS,
        now=time.time(),
    )

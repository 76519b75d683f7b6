"""Reads of the event log for the pull side (GET /v1/events), and its opaque cursor.

Ordering and "nothing skipped": events are returned in ``seq`` order and the cursor is the last
``seq`` seen. On PostgreSQL a sequence value is taken at INSERT but becomes visible at COMMIT,
so two concurrent ingestions can commit out of order (seq 11 visible before seq 10); a reader
that advanced past 11 would never see 10. Every transaction that records events therefore
holds a shared transaction-level advisory lock (``EVENT_WRITERS_LOCK``) from before its INSERT
until its COMMIT (``event_writers_enter``). A reader first tries the exclusive lock without
waiting: if it gets it, no writer is in flight, every seq taken so far is committed, and it
reads to the end, exactly; the lock keeps new writers out for that one SELECT. If a writer
is in flight it falls back to returning only events created at least
``WEBHOOKS_EVENTS_VISIBILITY_LAG_MS`` ago, stopping at the first younger one (an event whose
transaction commits within the lag of its INSERT is never skipped), and says so (``pending``)
so that a waiter looks again soon. The read needs READ COMMITTED (Django's default): the
SELECT's snapshot must be taken after the lock is granted. SQLite serialises writers (the
INSERT holds the write lock until COMMIT), so commits are in seq order and neither the lock
nor the lag is needed there.

The cursor carries the seq and the time of the last event seen. Events are pruned after
``WEBHOOKS_EVENT_RETENTION_DAYS`` (``manage.py prune_events``); a cursor older than that may
have missed pruned events, so it is refused with 410 ``cursor_expired`` and the client starts
again without ``after`` (and reconciles through GET /v1/inbox).
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from assmbl import domain
from directory.models import Agent
from webhooks.models import Event

POLL_INTERVAL = 0.15
MAX_WAIT = 60
# The advisory lock key of the event log's writers (any fixed bigint unique to this use).
EVENT_WRITERS_LOCK = 0x6173_6D62_6C65_7631


class CursorExpired(domain.Gone):
    code = "cursor_expired"
    default_message = "The cursor is older than the event retention; start again without 'after'."


@dataclass(frozen=True)
class Cursor:
    seq: int
    at_ms: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.seq}.{self.at_ms}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            seq, at_ms = raw.split(".")
            cursor = cls(int(seq), int(at_ms))
        except (ValueError, UnicodeDecodeError):
            raise domain.Invalid("The cursor is not valid.", code="invalid_cursor") from None
        if cursor.seq < 0:
            raise domain.Invalid("The cursor is not valid.", code="invalid_cursor")
        return cursor


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def visibility_lag() -> timedelta:
    if not settings.IS_POSTGRES:
        return timedelta(0)
    return timedelta(milliseconds=settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS)


def event_writers_enter() -> None:
    """Called by a writer inside its transaction, before it inserts events: holds the shared
    lock until that transaction ends, so a reader knows its seqs may not be committed yet."""
    if settings.IS_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [EVENT_WRITERS_LOCK])


def _rows_after(*, agent: Agent, after_seq: int, limit: int) -> tuple[list[Event], bool]:
    """The agent's next ``limit + 1`` events after ``after_seq``, and whether all of them are
    known to be committed in seq order (no writer was in flight, so no lag applies)."""
    query = Event.objects.filter(agent=agent, seq__gt=after_seq).order_by("seq")[: limit + 1]
    if not settings.IS_POSTGRES:
        return list(query), True
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [EVENT_WRITERS_LOCK])
            (quiet,) = cursor.fetchone()
        return list(query), bool(quiet)


PayloadCompleter = Callable[[list[dict[str, Any]]], None]


@functools.cache
def _completers() -> dict[str, PayloadCompleter]:
    """settings.WEBHOOKS_PAYLOAD_COMPLETERS, imported: the extension point for an app above
    this one (mail), wired in settings so that this layer never imports it. A completer
    receives the payloads of one page of its event type as they are read, and fills in, in
    place, what was not known yet when they were recorded (a message's content, computed
    after its ingest). It must not raise for a payload it cannot complete, and must not
    reach outside the payload's own agent (a page is one agent's)."""
    return {event_type: import_string(path) for event_type, path in settings.WEBHOOKS_PAYLOAD_COMPLETERS.items()}


def _complete(events: list[Event]) -> None:
    for event_type, completer in _completers().items():
        if payloads := [e.payload for e in events if e.type == event_type and isinstance(e.payload, dict)]:
            completer(payloads)


def event_item(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }


@dataclass
class Page:
    events: list[Event]
    next_cursor: str
    has_more: bool
    # An event after the cursor exists but is younger than the visibility lag: it becomes
    # readable within the lag, so a waiter looks again soon instead of waiting for a signal.
    pending: bool = False


def events_page(*, agent: Agent, after: Cursor | None, limit: int) -> Page:
    now = timezone.now()
    if after is not None and after.seq > 0:
        if after.at_ms < _ms(now - timedelta(days=settings.WEBHOOKS_EVENT_RETENTION_DAYS)):
            raise CursorExpired()
    cutoff = now - visibility_lag()
    after_seq = after.seq if after else 0
    rows, exact = _rows_after(agent=agent, after_seq=after_seq, limit=limit)
    if exact:
        cutoff = now
    visible: list[Event] = []
    pending = False
    for event in rows:
        if not exact and event.created_at > cutoff:
            pending = True
            break
        visible.append(event)
    has_more = len(visible) > limit or (len(visible) < len(rows) and len(visible) == limit)
    visible = visible[:limit]
    _complete(visible)
    if visible:
        last = visible[-1]
        cursor = Cursor(last.seq, _ms(last.created_at))
    else:
        # Nothing new up to the cutoff: the cursor stays put but its clock moves on, so a
        # quiet agent's cursor does not expire.
        cursor = Cursor(after_seq, max(after.at_ms if after else 0, _ms(cutoff)))
    return Page(events=visible, next_cursor=cursor.encode(), has_more=has_more, pending=pending)


def events_wait(*, agent: Agent, after: Cursor | None, limit: int, wait: float) -> Page:
    """Long-poll: re-read every ~150 ms until an event is visible or ``wait`` seconds pass.
    Each waiting request holds a worker thread, so run gunicorn with threads (gthread)."""
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    while True:
        page = events_page(agent=agent, after=after, limit=limit)
        if page.events or time.monotonic() >= deadline:
            return page
        time.sleep(POLL_INTERVAL)

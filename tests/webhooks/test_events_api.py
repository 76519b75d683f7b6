"""GET /v1/events: the pull side of the event log, with a stable cursor and long-poll."""

from __future__ import annotations

import random
import smtplib
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import time_machine
from django.db import connection, transaction

from tests.mime import build_mail
from webhooks.events import EVENT_WRITERS_LOCK, Cursor, events_page
from webhooks.models import Event
from webhooks.services import event_record


@pytest.fixture(autouse=True)
def no_visibility_lag(settings: Any) -> None:
    """Most tests read events they just wrote; the lag has its own test below."""
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 0


def _record(agent: Any, n: int) -> list[Event]:
    return [event_record(agent=agent, type="message.received", payload={"MessageID": f"msg_{i}"}) for i in range(n)]


def test_it_pages_through_the_agents_events_in_order(owner: Any, teammate: Any) -> None:
    events = _record(owner.agent, 5)
    _record(teammate.agent, 2)

    first = owner.client.get("/v1/events?limit=2").json()
    second = owner.client.get(f"/v1/events?limit=2&after={first['next_cursor']}").json()
    third = owner.client.get(f"/v1/events?limit=2&after={second['next_cursor']}").json()

    seen = [e["id"] for page in (first, second, third) for e in page["items"]]
    assert seen == [e.id for e in events]
    assert first["has_more"] and second["has_more"] and not third["has_more"]
    assert first["items"][0]["type"] == "message.received" and first["items"][0]["data"] == {"MessageID": "msg_0"}


def test_the_cursor_is_stable_when_nothing_new_arrives_and_picks_up_new_events(owner: Any) -> None:
    _record(owner.agent, 1)
    page = owner.client.get("/v1/events").json()

    empty = owner.client.get(f"/v1/events?after={page['next_cursor']}").json()
    [later] = _record(owner.agent, 1)
    fresh = owner.client.get(f"/v1/events?after={empty['next_cursor']}").json()

    assert empty["items"] == []
    assert [e["id"] for e in fresh["items"]] == [later.id]


def test_a_cursor_older_than_the_retention_is_410(owner: Any, settings: Any) -> None:
    settings.WEBHOOKS_EVENT_RETENTION_DAYS = 30
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        _record(owner.agent, 1)
        cursor = owner.client.get("/v1/events").json()["next_cursor"]

    response = owner.client.get(f"/v1/events?after={cursor}")

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "cursor_expired"


def test_bad_parameters_are_400(owner: Any) -> None:
    for query in ("limit=0", "limit=101", "wait=61", "wait=x", "after=!!", "after=", "colour=red"):
        response = owner.client.get(f"/v1/events?{query}")
        assert response.status_code == 400, query


def test_an_operator_token_cannot_read_events(operator: Any) -> None:
    assert operator.get("/v1/events").status_code == 403


def test_long_poll_returns_when_an_event_arrives(transactional_db: Any, owner: Any) -> None:
    """The view re-reads the database until another thread's event commits."""
    cursor = Cursor(0, 0).encode()

    def later() -> None:
        try:
            _record(owner.agent, 1)
        finally:
            connection.close()  # a thread's own connection; left open it blocks test-db teardown

    threading.Timer(0.3, later).start()

    started = time.monotonic()
    body = owner.client.get(f"/v1/events?after={cursor}&wait=5").json()

    assert len(body["items"]) == 1
    assert time.monotonic() - started < 5


def test_long_poll_ends_empty_when_the_wait_ends(owner: Any) -> None:
    body = owner.client.get("/v1/events?wait=1").json()

    assert body["items"] == [] and body["next_cursor"]


def test_long_poll_returns_within_a_second_of_smtp_250(smtp_listener: Any, owner: Any) -> None:
    """End to end: a real SMTP conversation, and a long-poll waiting in another thread."""
    start = owner.client.get("/v1/events").json()["next_cursor"]
    result: dict[str, Any] = {}

    def poll() -> None:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.token}")
        try:
            result["body"] = client.get(f"/v1/events?after={start}&wait=30").json()
            result["returned_at"] = time.monotonic()
        finally:
            connection.close()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    with smtplib.SMTP(*smtp_listener) as smtp:
        smtp.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address, subject="Ping"))
        accepted_at = time.monotonic()
    poller.join(timeout=30)

    assert result["body"]["items"][0]["data"]["Subject"] == "Ping"
    assert result["returned_at"] - accepted_at < 1.0


def test_a_duplicate_by_idempotency_key_emits_no_event(owner: Any, deliver: Any) -> None:
    headers = {"X-AgentMail-Idempotency-Key": "order-42"}
    aligned = {"spf": "pass", "spf_domain": "example.com", "dkim": "none", "single_from": True}
    deliver(build_mail(to=owner.address, subject="First", headers=headers), to=owner.address, authentication=aligned)
    deliver(build_mail(to=owner.address, subject="Retry", headers=headers), to=owner.address, authentication=aligned)

    items = owner.client.get("/v1/events").json()["items"]

    assert [e["data"]["Subject"] for e in items] == ["First"]


def test_a_huge_payload_is_truncated_not_dropped(owner: Any, settings: Any) -> None:
    settings.WEBHOOKS_MAX_PAYLOAD_BYTES = 8192
    event = event_record(
        agent=owner.agent,
        type="message.received",
        payload={"MessageID": "msg_big", "Subject": "s" * 50_000, "To": [f"a{i}@example.com" for i in range(5000)]},
    )

    import json

    assert len(json.dumps(event.payload).encode()) <= 8192
    assert event.payload["MessageID"] == "msg_big" and event.payload["Truncated"] is True


def test_old_events_are_invisible_to_other_agents(owner: Any, stranger: Any) -> None:
    _record(owner.agent, 2)

    assert stranger.client.get("/v1/events").json()["items"] == []


def _writer_in_flight() -> Any:
    """Another connection inside a transaction that records events and has not committed."""
    other = psycopg.connect(_dsn(), autocommit=False)
    other.execute("SELECT pg_advisory_xact_lock_shared(%s)", [EVENT_WRITERS_LOCK])
    return other


def _dsn() -> str:
    s = connection.settings_dict
    return f"host={s['HOST']} port={s['PORT']} dbname={s['NAME']} user={s['USER']} password={s['PASSWORD'] or ''}"


@pytest.mark.postgres
def test_events_younger_than_the_visibility_lag_wait_while_a_writer_is_in_flight(owner: Any, settings: Any) -> None:
    """On PostgreSQL a lower seq can commit after a higher one; while another transaction
    that records events is open, the lag keeps the cursor from passing its uncommitted seq."""
    if not settings.IS_POSTGRES:
        pytest.skip("SQLite commits in seq order; no lag is applied there")
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 500
    other = _writer_in_flight()
    try:
        with time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False) as clock:
            [old] = _record(owner.agent, 1)
            clock.shift(1)
            [young] = _record(owner.agent, 1)
            clock.shift(0.2)
            first = owner.client.get("/v1/events").json()
            clock.shift(0.5)
            second = owner.client.get(f"/v1/events?after={first['next_cursor']}").json()
    finally:
        other.close()

    assert [e["id"] for e in first["items"]] == [old.id]
    assert [e["id"] for e in second["items"]] == [young.id]


@pytest.mark.postgres
def test_a_committed_event_is_read_at_once_when_no_writer_is_in_flight(
    transactional_db: Any, owner: Any, settings: Any
) -> None:
    if not settings.IS_POSTGRES:
        pytest.skip("the lag only applies on PostgreSQL")
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 500
    [event] = _record(owner.agent, 1)

    page = events_page(agent=owner.agent, after=None, limit=10)

    assert [e.id for e in page.events] == [event.id] and not page.pending


def _write_slowly(agent: Any, count: int, rng: random.Random) -> None:
    try:
        for _ in range(count):
            with transaction.atomic():
                event_record(agent=agent, type="message.received", payload={})
                # Between the INSERT (the seq is taken) and the COMMIT: commits interleave.
                time.sleep(rng.uniform(0, 0.03))
    finally:
        connection.close()


@pytest.mark.postgres
def test_a_cursor_paging_during_concurrent_writes_skips_no_event(
    transactional_db: Any, owner: Any, settings: Any
) -> None:
    """Eight writers commit out of seq order while a reader pages as fast as it can."""
    if not settings.IS_POSTGRES:
        pytest.skip("SQLite commits in seq order")
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 500
    writers = [threading.Thread(target=_write_slowly, args=(owner.agent, 25, random.Random(n))) for n in range(8)]
    for w in writers:
        w.start()
    seen: list[int] = []
    after: Cursor | None = None
    exact_reads = 0
    while True:
        writing = any(w.is_alive() for w in writers)
        page = events_page(agent=owner.agent, after=after, limit=7)
        seen += [e.seq for e in page.events]
        after = Cursor.decode(page.next_cursor)
        exact_reads += bool(page.events) and not page.pending
        if not writing and not page.events and not page.pending:
            break

    assert len(seen) == 200
    assert seen == sorted(Event.objects.filter(agent=owner.agent).values_list("seq", flat=True))
    assert exact_reads > 0

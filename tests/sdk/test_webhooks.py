"""Webhook management through the SDK, and the event log: list_events, iter_events,
wait_for_message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentmail_client import AgentMailClient, NotFoundError, ValidationError
from tests.sdk.conftest import LiveAgent


def test_it_manages_webhooks(client: AgentMailClient, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True

    created = client.create_webhook("http://127.0.0.1:9/hook", event_types=["message.received"])
    updated = client.update_webhook(created["id"], enabled=False, description="paused")
    rotated = client.rotate_webhook_secret(created["id"])
    replayed = client.replay_webhook(created["id"], since=datetime.now(UTC) - timedelta(hours=1))

    assert created["secret"].startswith("whsec_") and created["event_types"] == ["message.received"]
    assert (updated["enabled"], updated["description"]) == (False, "paused") and "secret" not in updated
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert replayed == {"replayed": 0}
    with pytest.raises(NotFoundError):
        client.replay_webhook(created["id"], event_id="evt_none")
    assert [w["id"] for w in client.list_webhooks()["items"]] == [created["id"]]
    client.delete_webhook(created["id"])
    assert client.list_webhooks()["items"] == []
    with pytest.raises(NotFoundError):
        client.get_webhook(created["id"])
    with pytest.raises(ValidationError) as unsafe:
        client.create_webhook("http://10.0.0.1/hook")
    assert unsafe.value.code == "unsafe_url"


def test_it_lists_and_iterates_events(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="First")
    receive(live_agent, subject="Second")

    # wait: on PostgreSQL events become visible only after a short lag (webhooks/events.py).
    page = client.list_events(limit=1, wait=5)
    rest = client.list_events(after=page["next_cursor"], wait=5)
    events = client.iter_events(wait=1)
    streamed = [next(events)["data"]["Subject"], next(events)["data"]["Subject"]]

    assert [e["type"] for e in page["items"]] == ["message.received"] and page["has_more"] is True
    assert [e["data"]["Subject"] for e in rest["items"]] == ["Second"]
    assert streamed == ["First", "Second"]
    assert client.list_events(after=client.last_event_cursor)["items"] == []


def test_wait_for_message_returns_the_matching_mail_when_it_arrives(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Old news")
    cursor = client.list_events(wait=5)["next_cursor"]

    def later() -> None:
        time.sleep(0.5)
        receive(live_agent, subject="Unrelated")
        receive(live_agent, subject="Your invoice is ready", sender="Billing <billing@example.com>")

    thread = threading.Thread(target=later)
    thread.start()
    try:
        item = client.wait_for_message(q="INVOICE", timeout=20, after=cursor)
    finally:
        thread.join()

    assert item is not None and item["Subject"] == "Your invoice is ready" and item["Sender"] == "billing@example.com"
    assert client.wait_for_message(q="nothing like this", timeout=1, after=client.last_event_cursor) is None

"""wait_for_message(new_only=True): mail already in the event log when the call starts does
not count, mail arriving during it does (sync and async)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from agentmail_client import AgentMailClient, AsyncAgentMailClient
from tests.sdk.conftest import LiveAgent


def test_new_only_passes_over_the_mail_already_there_and_returns_the_next(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Old code 111111")
    # The event log shows an event once it is older than the visibility lag (PostgreSQL):
    # until then a mail from just before the call cannot be told from one just after it.
    time.sleep(settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS / 1000 + 0.2)
    later = threading.Timer(1.0, lambda: receive(live_agent, subject="New code 222222"))
    later.start()
    try:
        item = client.wait_for_message(q="code", timeout=15, new_only=True)
    finally:
        later.join()

    assert item is not None and item["Subject"] == "New code 222222"
    assert client.last_event_cursor is not None


def test_without_new_only_the_wait_starts_at_the_beginning_of_the_log(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Old code 111111")

    item = client.wait_for_message(q="code", timeout=5)

    assert item is not None and item["Subject"] == "Old code 111111"


def test_the_async_new_only_wait_times_out_when_only_old_mail_matches(
    live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Old code 111111")
    # The event log shows an event once it is older than the visibility lag (PostgreSQL):
    # until then a mail from just before the call cannot be told from one just after it.
    time.sleep(settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS / 1000 + 0.2)

    async def scenario() -> tuple[dict[str, Any] | None, float]:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            started = time.monotonic()
            item = await client.wait_for_message(q="code", timeout=1.5, new_only=True)
            return item, time.monotonic() - started

    item, took = asyncio.run(scenario())

    assert item is None and took >= 1.0

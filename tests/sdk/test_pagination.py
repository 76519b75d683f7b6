"""Paging through the inbox with the SDK returns every message exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from django.utils import timezone

from agentmail_client import AsyncAgentMailClient
from tests.factories import MessageFactory
from tests.sdk.conftest import LiveAgent


def _make_250(agent: LiveAgent) -> set[str]:
    base = timezone.now() - timedelta(hours=1)
    # Groups of five share a ReceivedAt, so the cursor's tie-break on MessageID is exercised.
    messages = [MessageFactory(agent=agent.agent, received_at=base + timedelta(seconds=i // 5)) for i in range(250)]
    return {m.id for m in messages}


def test_it_pages_through_250_messages_each_exactly_once(live_agent: LiveAgent) -> None:
    expected = _make_250(live_agent)

    with live_agent.client() as client:
        pages = list(client.iter_inbox_pages(page_size=50))
        seen = [item["MessageID"] for page in pages for item in page["items"]]
        small = [item["MessageID"] for page in client.iter_inbox_pages(page_size=7) for item in page["items"]]

    assert len(pages) == 5 and all(len(p["items"]) == 50 for p in pages)
    assert pages[-1]["has_more"] is False and pages[-1]["next_cursor"] is None
    assert len(seen) == 250 and set(seen) == expected
    assert small == seen  # same order whatever the page size: oldest first


def test_the_async_client_pages_the_same_way(live_agent: LiveAgent) -> None:
    expected = _make_250(live_agent)

    async def collect() -> list[str]:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            return [
                item["MessageID"] async for page in client.iter_inbox_pages(page_size=100) for item in page["items"]
            ]

    seen = asyncio.run(collect())

    assert len(seen) == 250 and set(seen) == expected

"""iter_event_stream (sync and async): GET /v1/events/stream with automatic resume. Against
the live server (WSGI, where each stream ends with the events there are): every reconnect
resumes with Last-Event-ID, so the iterator yields each event once, in order, across them."""

from __future__ import annotations

import asyncio
from typing import Any

from agentmail_client import AsyncAgentMailClient
from tests.sdk.conftest import LiveAgent
from webhooks.services import event_record


def _record(live_agent: LiveAgent, subjects: list[str]) -> None:
    for subject in subjects:
        event_record(
            agent=live_agent.agent, type="message.received", payload={"MessageID": subject, "Subject": subject}
        )


def test_the_stream_resumes_after_each_drop_without_missing_or_repeating(live_agent: LiveAgent, settings: Any) -> None:
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 0
    _record(live_agent, ["a", "b", "c"])
    with live_agent.client() as client:
        stream = client.iter_event_stream()
        first = [next(stream)["data"]["Subject"] for _ in range(3)]
        resume_from = client.last_event_id
        _record(live_agent, ["d", "e"])
        later = [next(stream)["data"]["Subject"] for _ in range(2)]
    with live_agent.client() as client:
        again = next(client.iter_event_stream(last_event_id=resume_from))

    assert first == ["a", "b", "c"]
    assert later == ["d", "e"]
    assert again["data"]["Subject"] == "d"


def test_the_async_stream_resumes_from_a_given_event_id(live_agent: LiveAgent, settings: Any) -> None:
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 0
    _record(live_agent, ["a", "b"])

    async def run() -> list[str]:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            stream = client.iter_event_stream()
            first = await anext(stream)
            await stream.aclose()
            await asyncio.to_thread(_record, live_agent, ["c"])
            resumed = client.iter_event_stream(last_event_id=client.last_event_id)
            got = [first["data"]["Subject"], (await anext(resumed))["data"]["Subject"]]
            got.append((await anext(resumed))["data"]["Subject"])
            await resumed.aclose()
            return got

    assert asyncio.run(run()) == ["a", "b", "c"]

"""The content of a message through the SDK: get_message's decoded fields,
get_attachment_text, and wait_for_code (sync and async), against the live test server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from agentmail_client import AgentMailClient, AgentMailError, AsyncAgentMailClient, NotFoundError
from tests.sdk.conftest import LiveAgent


def test_get_message_returns_the_decoded_content(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Sign-in", body="Your verification code is 482913.\n\nIt expires in 10 minutes.")
    message_id = client.list_inbox()["items"][0]["MessageID"]

    message = client.get_message(message_id)

    assert message["Codes"] == ["482913"] and message["Html"] is None
    assert message["ExtractedText"].startswith("Your verification code is 482913.")
    assert message["Safety"] == {"hidden_text": False, "flags": []}
    assert "<untrusted_email>" in message["PromptText"] and "raw_mime" in message


def test_get_attachment_text_converts_a_csv_and_refuses_an_image(
    client: AgentMailClient, live_agent: LiveAgent, other_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(
        live_agent,
        subject="Files",
        attachments=[
            ("prices.csv", "text/csv", b"item,price\nwidget,3\n"),
            ("logo.png", "image/png", b"\x89PNG\r\n\x1a\n0000"),
        ],
    )
    message = client.list_inbox()["items"][0]
    csv_id, png_id = (a["AttachmentID"] for a in message["Attachments"])

    text = client.get_attachment_text(message["MessageID"], csv_id)
    with pytest.raises(AgentMailError) as refused:
        client.get_attachment_text(message["MessageID"], png_id)
    with other_agent.client() as other, pytest.raises(NotFoundError):
        other.get_attachment_text(message["MessageID"], csv_id)

    assert text["AttachmentID"] == csv_id and "widget" in text["Text"] and text["Truncated"] is False
    assert refused.value.status == 415 and refused.value.code == "unsupported_attachment_type"


def _later(receive: Callable[..., Any], live_agent: LiveAgent) -> threading.Thread:
    def run() -> None:
        time.sleep(0.5)
        receive(live_agent, subject="Welcome", body="No code in here.")
        receive(live_agent, subject="Login", body="Your one-time code: 731942")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_for_code_returns_the_code_of_a_new_message(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Old", body="Your code is 111222")  # before the call: not new
    # The event log shows an event once it is older than the visibility lag (PostgreSQL):
    # until then a mail from just before the call cannot be told from one just after it.
    time.sleep(settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS / 1000 + 0.2)
    thread = _later(receive, live_agent)
    try:
        code = client.wait_for_code(timeout=20)
    finally:
        thread.join()

    assert code == "731942"
    assert client.wait_for_code(timeout=1, q="nothing like this") is None


def test_the_async_wait_for_code_returns_the_code_of_a_new_message(
    live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    async def run() -> str | None:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            return await client.wait_for_code(timeout=20, q="login")

    thread = _later(receive, live_agent)
    try:
        code = asyncio.run(run())
    finally:
        thread.join()

    assert code == "731942"

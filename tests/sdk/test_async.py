"""AsyncAgentMailClient: the same calls, the same answers, the same exceptions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentmail_client import AgentMailClient, AsyncAgentMailClient, NotFoundError, ValidationError
from tests.sdk.conftest import LiveAgent


def test_the_async_client_answers_like_the_sync_one(live_agent: LiveAgent, receive: Callable[..., Any]) -> None:
    receive(live_agent, subject="Async invoice", body="Pay me")
    receive(live_agent, subject="Other", body="Hello")

    async def run() -> dict[str, Any]:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            page = await client.list_inbox(limit=25)
            message_id = page["items"][0]["MessageID"]
            found = await client.list_inbox(q="invoice")
            message = await client.get_message(message_id)
            raw = await client.get_raw_message(message_id)
            labelled = await client.patch_message_labels(message_id, add=["urgent"])
            await client.patch_message_read(message_id, is_read=True)
            unread = await client.get_unread_count()
            with pytest.raises(ValidationError) as empty:
                await client.list_inbox(q=" ")
            await client.delete_message(message_id)
            with pytest.raises(NotFoundError):
                await client.get_message(message_id)
            return {
                "page": page,
                "found": found,
                "message": message,
                "raw": raw,
                "labelled": labelled,
                "unread": unread,
                "empty_code": empty.value.code,
            }

    result = asyncio.run(run())

    with live_agent.client() as sync:
        remaining = sync.list_inbox()
    assert [i["Subject"] for i in result["page"]["items"]] == ["Async invoice", "Other"]
    assert [i["Subject"] for i in result["found"]["items"]] == ["Async invoice"]
    assert result["message"]["raw_mime"] == result["raw"].decode()
    assert isinstance(result["raw"], bytes) and b"Subject: Async invoice" in result["raw"]
    assert result["labelled"]["Labels"] == ["urgent"]
    assert result["unread"] == {"unread_count": 1}
    assert result["empty_code"] == "empty_query"
    assert [i["Subject"] for i in remaining["items"]] == ["Other"]
    assert set(result["page"]["items"][1]) == set(remaining["items"][0])


def test_both_clients_have_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(AgentMailClient) - {"close"} == public(AsyncAgentMailClient) - {"aclose"}

"""update_message: labels, read state and archiving of one message in one SDK call (sync and
async), each part one PATCH of the API, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentmail_client import AgentMailClient, AsyncAgentMailClient, ValidationError
from mail.models import Message
from tests.sdk.conftest import LiveAgent


def test_update_message_applies_labels_read_and_archive_and_returns_the_item(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Tidy me")
    message_id = client.list_inbox()["items"][0]["MessageID"]

    item = client.update_message(message_id, add_labels=["done", "billing"], is_read=True, archived=True)

    assert item["Labels"] == ["billing", "done"] and item["IsRead"] is True and item["Archived"] is True
    stored = Message.objects.get(id=message_id)
    assert stored.is_read and stored.archived


def test_update_message_stops_at_the_refused_part_leaving_the_earlier_ones_applied(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Labels first")
    message_id = client.list_inbox()["items"][0]["MessageID"]

    with pytest.raises(ValidationError) as refused:
        client.update_message(message_id, add_labels=["x" * 65], is_read=True)

    assert refused.value.code == "invalid_label"
    assert Message.objects.get(id=message_id).is_read is False


def test_update_message_with_nothing_to_change_is_refused_before_any_request(client: AgentMailClient) -> None:
    with pytest.raises(ValueError, match="nothing to update"):
        client.update_message("msg_any")


def test_the_async_update_message_marks_unread(live_agent: LiveAgent, receive: Callable[..., Any]) -> None:
    receive(live_agent, subject="Async")

    async def scenario() -> dict[str, Any]:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            message_id = (await client.list_inbox())["items"][0]["MessageID"]
            await client.update_message(message_id, is_read=True)
            return await client.update_message(message_id, is_read=False, remove_labels=["absent"])

    item = asyncio.run(scenario())

    assert item["IsRead"] is False and item["Labels"] == []

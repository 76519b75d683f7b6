"""The SDK's threads and batch calls against a live server, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentmail_client import AsyncAgentMailClient, ConflictError, ValidationError
from mail.models import Message
from tests.sdk.conftest import LiveAgent


def _message(receive: Callable[..., Any], agent: LiveAgent, **mail: Any) -> Message:
    return Message.objects.get(delivery=receive(agent, **mail).delivery, agent=agent.agent)


def test_it_lists_pages_and_patches_threads(live_agent: LiveAgent, receive: Callable[..., Any]) -> None:
    first = _message(receive, live_agent, subject="Invoice 42", body="Please pay")
    headers = {"In-Reply-To": first.internet_message_id}
    _message(receive, live_agent, subject="Re: Invoice 42", body="Reminder", headers=headers)
    other = _message(receive, live_agent, subject="Lunch")

    with live_agent.client() as client:
        listed = client.list_threads()
        pages = list(client.iter_thread_pages(page_size=1))
        found = client.list_threads(q="invoice")
        labelled = client.patch_thread_labels(first.thread_id, add=["billing"])
        read = client.patch_thread_read(first.thread_id, is_read=True)
        archived = client.patch_thread_archive(other.thread_id, archived=True)
        with pytest.raises(ConflictError):
            client.patch_thread_archive(other.thread_id, archived=True)
        remaining = client.list_threads()
        thread = client.get_thread(first.thread_id)

    assert [t["ThreadID"] for t in listed["items"]] == [other.thread_id, first.thread_id]
    assert [t["ThreadID"] for p in pages for t in p["items"]] == [other.thread_id, first.thread_id]
    assert [(t["Subject"], t["MessageCount"]) for t in found["items"]] == [("Invoice 42", 2)]
    assert labelled["Labels"] == ["billing"]
    assert read["UnreadCount"] == 0
    assert archived["ThreadID"] == other.thread_id
    assert [t["ThreadID"] for t in remaining["items"]] == [first.thread_id]
    assert [m["Labels"] for m in thread["items"]] == [["billing"], ["billing"]]


def test_it_reads_and_updates_messages_in_batches(
    live_agent: LiveAgent, other_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    mine = [_message(receive, live_agent, subject=f"M{i}").id for i in range(3)]
    theirs = _message(receive, other_agent, subject="Not yours").id

    with live_agent.client() as client:
        got = client.get_messages([*mine, theirs])
        updated = client.batch_update([*mine, theirs], add_labels=["done"], is_read=True)
        with pytest.raises(ValidationError) as too_many:
            client.batch_update(mine, add_labels=[f"l{i}" for i in range(20)])

    assert [i["MessageID"] for i in got["items"]] == mine and got["not_found"] == [theirs]
    assert [(i["Labels"], i["IsRead"]) for i in updated["items"]] == [(["done"], True)] * 3
    assert updated["not_found"] == [theirs]
    assert too_many.value.code == "too_many_labels"
    assert not Message.objects.filter(agent=other_agent.agent, is_read=True).exists()


def test_the_async_client_has_them_too(live_agent: LiveAgent, receive: Callable[..., Any]) -> None:
    message = _message(receive, live_agent, subject="Async")

    async def run() -> tuple[Any, ...]:
        async with AsyncAgentMailClient(live_agent.base_url, live_agent.token) as client:
            pages = [page async for page in client.iter_thread_pages(page_size=10)]
            batch = await client.batch_update([message.id], archived=True)
            got = await client.get_messages([message.id])
            restored = await client.patch_thread_archive(message.thread_id, archived=False)
            return pages, batch, got, restored

    pages, batch, got, restored = asyncio.run(run())

    assert [t["ThreadID"] for t in pages[0]["items"]] == [message.thread_id]
    assert batch["items"][0]["Archived"] is True and got["items"][0]["Archived"] is True
    assert restored["ThreadID"] == message.thread_id

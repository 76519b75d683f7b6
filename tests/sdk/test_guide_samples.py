"""Every code sample of the guide (shared/spec/inbox-and-mail-flow.md), copied verbatim,
run against a live server with a real agent token."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from mail.models import Message
from tests.sdk.conftest import LiveAgent


@pytest.fixture
def guide_env(live_agent: LiveAgent, monkeypatch: pytest.MonkeyPatch) -> LiveAgent:
    monkeypatch.setenv("AGENTMAIL_API_BASE_URL", live_agent.base_url)
    monkeypatch.setenv("AGENTMAIL_TOKEN", live_agent.token)
    return live_agent


def test_it_runs_every_sample_of_the_guide_unchanged(guide_env: LiveAgent, receive: Callable[..., Any]) -> None:
    receive(guide_env, subject="Invoice 42", body="Please pay the invoice")
    receive(guide_env, subject="Lunch", body="Pizza?")
    processed: list[str] = []

    def process(item: dict[str, Any]) -> None:
        processed.append(item["MessageID"])

    # --- 1. Send a message (verbatim) ---
    from agentmail_client import AgentMailClient

    client = AgentMailClient(
        base_url=os.environ["AGENTMAIL_API_BASE_URL"],
        token=os.environ["AGENTMAIL_TOKEN"],
    )
    client.send_mail(to="recipient@example.com", subject="Hello", body="Hi from Assmbl")

    # --- 2. Poll the inbox ---
    page = client.list_inbox(limit=25)
    for item in page.get("items", []):
        print(item["MessageID"], item["SenderVerified"])
    assert len(page["items"]) == 2
    message_id = page["items"][0]["MessageID"]

    for page in client.iter_inbox_pages(page_size=50, verified_only=True):
        for item in page.get("items", []):
            process(item)
    # SENDER_VERIFICATION_ENABLED is off in tests: nothing is verified.
    assert processed == []

    # --- 3. Fetch a full message (raw MIME) ---
    msg = client.get_message(message_id)
    print(msg["raw_mime"])
    assert "Subject: Invoice 42" in msg["raw_mime"]

    # --- 6. Search the inbox ---
    page = client.list_inbox(q="invoice")
    assert [i["Subject"] for i in page["items"]] == ["Invoice 42"]
    # Combined with other filters
    for page in client.iter_inbox_pages(q="invoice", verified_only=True):
        for item in page.get("items", []):
            process(item)

    # --- 7. Labels ---
    client.patch_message_labels(
        message_id,
        add=["needs-review", "urgent"],
        remove=["inbox"],
    )
    page = client.list_inbox(label="needs-review")
    assert [i["MessageID"] for i in page["items"]] == [message_id]
    assert page["items"][0]["Labels"] == ["needs-review", "urgent"]

    # --- 8. Read/Unread tracking ---
    client.patch_message_read(message_id, is_read=True)
    assert client.get_unread_count()["unread_count"] == 1
    client.patch_message_read(message_id, is_read=False)  # mark unread
    result = client.get_unread_count()
    print(result["unread_count"])
    assert result["unread_count"] == 2
    page = client.list_inbox(is_read=False)
    assert len(page["items"]) == 2

    # --- 9. Archive ---
    client.patch_message_archive(message_id, archived=True)
    assert message_id not in [i["MessageID"] for i in client.list_inbox()["items"]]
    client.patch_message_archive(message_id, archived=False)  # unarchive
    page = client.list_inbox(include_archived=True)
    assert len(page["items"]) == 2

    # --- Sender trust ---
    page = client.list_inbox(limit=25, verified_only=True)
    assert page["items"] == []

    # --- 4. Delete a message ---
    client.delete_message(message_id)
    assert [i["MessageID"] for i in client.list_inbox()["items"]] != [] and message_id not in [
        i["MessageID"] for i in client.list_inbox()["items"]
    ]

    # The send of sample 1 really was recorded as one outbound message.
    assert (
        Message.objects.filter(agent=guide_env.agent, direction=Message.Direction.OUTBOUND, subject="Hello").count()
        == 1
    )

"""The README's q examples through the SDK, against a live server: the grammar's operators
narrow a listing, and a malformed value is a ValidationError with code invalid_query."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentmail_client import AgentMailClient, ValidationError
from tests.sdk.conftest import LiveAgent


def test_it_narrows_the_inbox_by_the_grammar(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    receive(live_agent, subject="Invoice 42", body="Please pay by wire transfer", sender="Dave <dave@example.com>")
    receive(live_agent, subject="Invoice 43", body="Please pay by card", sender="Erin <erin@example.com>")

    found = client.list_inbox(q="from:dave subject:invoice -is:read")["items"]
    assert [item["Subject"] for item in found] == ["Invoice 42"]
    assert [item["Subject"] for item in client.list_inbox(q='invoice -"invoice 42"')["items"]] == ["Invoice 43"]


def test_it_raises_invalid_query_for_a_malformed_operator(client: AgentMailClient) -> None:
    with pytest.raises(ValidationError) as caught:
        client.list_inbox(q="after:2026-02-30")
    assert caught.value.code == "invalid_query" and "after:2026-02-30" in caught.value.message

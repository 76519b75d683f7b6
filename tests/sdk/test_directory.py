"""Directory and trust through the SDK: trust, block, list, delete; find agents."""

from __future__ import annotations

import pytest

from agentmail_client import AgentMailClient, ValidationError
from directory.models import Sender, SenderRule
from tests.sdk.conftest import LiveAgent


def test_it_trusts_blocks_lists_and_deletes_senders(client: AgentMailClient, live_agent: LiveAgent) -> None:
    trusted = client.trust_sender("boss@example.com")
    blocked = client.block_sender("spam.example")

    listed = client.list_senders()
    assert {(e["address_or_domain"], e["status"]) for e in listed["items"]} == {
        ("boss@example.com", "trusted"),
        ("spam.example", "blocked"),
    }
    assert [e["id"] for e in client.list_senders(status="blocked")["items"]] == [blocked["id"]]
    assert Sender.objects.get(agent=live_agent.agent, address="boss@example.com").status == Sender.Status.TRUSTED

    client.delete_sender(blocked["id"])
    assert not SenderRule.objects.filter(pattern="spam.example").exists()
    assert [e["id"] for e in client.list_senders()["items"]] == [trusted["id"]]
    with pytest.raises(ValidationError):
        client.trust_sender("not an address")


def test_it_finds_agents_by_id_or_address(client: AgentMailClient, other_agent: LiveAgent) -> None:
    by_id = client.find_agents("otheragent")
    by_address = client.find_agents(other_agent.address)

    assert [a["agent_id"] for a in by_id["items"]] == ["otheragent"]
    assert by_address["items"][0]["address"] == other_agent.address

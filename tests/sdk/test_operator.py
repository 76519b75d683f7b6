"""Operator helpers: provision an agent, list agents, rotate its token, all with the SDK."""

from __future__ import annotations

import pytest

from agentmail_client import AgentMailClient, AuthenticationError, ConflictError


def test_an_operator_creates_lists_and_rotates_agents(base_url: str, operator_token: str) -> None:
    with AgentMailClient(base_url, operator_token) as operator:
        created = operator.create_agent("newbie", display_name="New Bie")
        with pytest.raises(ConflictError):
            operator.create_agent("newbie")
        listed = operator.list_agents()
        rotated = operator.rotate_agent_token("newbie")
        updated = operator.update_agent("newbie", policy="challenge")

    assert created["agent_id"] == "newbie" and created["token"].startswith("amk_")
    assert [a["agent_id"] for a in listed["items"]] == ["newbie"] and "token" not in listed["items"][0]
    assert updated["policy"] == "challenge"
    with AgentMailClient(base_url, created["token"]) as old, pytest.raises(AuthenticationError):
        old.list_inbox()
    with AgentMailClient(base_url, rotated["token"]) as new:
        assert new.list_inbox()["items"] == []

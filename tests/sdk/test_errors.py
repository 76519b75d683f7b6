"""HTTP errors become typed exceptions carrying the envelope's status, code and message."""

from __future__ import annotations

import pytest

from agentmail_client import (
    AgentMailClient,
    AgentMailError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from tests.factories import MessageFactory
from tests.sdk.conftest import LiveAgent


def test_it_raises_authentication_error_on_a_bad_token(base_url: str) -> None:
    with AgentMailClient(base_url, "amk_000000000000_nope") as client, pytest.raises(AuthenticationError) as caught:
        client.list_inbox()

    assert caught.value.status == 401 and isinstance(caught.value, AgentMailError)
    assert caught.value.message


def test_it_raises_not_found_for_an_unknown_id_and_for_another_agents_message(
    client: AgentMailClient, other_agent: LiveAgent
) -> None:
    theirs = MessageFactory(agent=other_agent.agent)

    with pytest.raises(NotFoundError) as unknown:
        client.get_message("msg_doesnotexist")
    with pytest.raises(NotFoundError) as foreign:
        client.get_message(theirs.id)
    with pytest.raises(NotFoundError):
        client.delete_message(theirs.id)

    assert unknown.value.status == foreign.value.status == 404
    assert (unknown.value.code, unknown.value.message) == (foreign.value.code, foreign.value.message)


def test_it_raises_validation_error_with_code_empty_query(client: AgentMailClient) -> None:
    with pytest.raises(ValidationError) as caught:
        client.list_inbox(q="")

    assert caught.value.status == 400 and caught.value.code == "empty_query"


def test_it_raises_validation_error_for_a_limit_out_of_range_and_bad_labels(
    client: AgentMailClient, live_agent: LiveAgent
) -> None:
    message = MessageFactory(agent=live_agent.agent)

    with pytest.raises(ValidationError) as limit:
        client.list_inbox(limit=101)
    with pytest.raises(ValidationError) as label:
        client.patch_message_labels(message.id, add=["   "])

    assert limit.value.status == label.value.status == 400


def test_it_raises_conflict_error_when_archiving_twice(client: AgentMailClient, live_agent: LiveAgent) -> None:
    message = MessageFactory(agent=live_agent.agent)
    client.patch_message_archive(message.id, archived=True)

    with pytest.raises(ConflictError) as caught:
        client.patch_message_archive(message.id, archived=True)

    assert caught.value.status == 409 and caught.value.code == "already_archived"


def test_an_agent_token_on_an_operator_endpoint_is_refused(client: AgentMailClient) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        client.list_agents()

    assert caught.value.status == 403

"""base_url: the server root plus /v1, the bare server root, and a URL outside the API."""

from __future__ import annotations

from typing import Any

import pytest

from agentmail_client import AgentMailClient, AsyncAgentMailClient, NotFoundError
from tests.sdk.conftest import LiveAgent


@pytest.mark.parametrize("root", ["{url}", "{url}/"])
def test_it_accepts_the_bare_server_root(live_server: Any, live_agent: LiveAgent, root: str) -> None:
    with AgentMailClient(root.format(url=live_server.url), live_agent.token) as client:
        assert client.base_url == f"{live_server.url}/v1"
        assert client.list_inbox()["items"] == []


def test_the_async_client_accepts_the_bare_server_root_too(live_server: Any, live_agent: LiveAgent) -> None:
    assert AsyncAgentMailClient(live_server.url, live_agent.token).base_url == f"{live_server.url}/v1"


def test_a_base_url_outside_the_api_fails_with_an_error_that_says_to_add_v1(
    live_server: Any, live_agent: LiveAgent
) -> None:
    with AgentMailClient(f"{live_server.url}/api", live_agent.token) as client, pytest.raises(NotFoundError) as caught:
        client.list_inbox()

    assert caught.value.status == 404
    assert f"{live_server.url}/api/inbox" in caught.value.message
    assert "base_url must be the server's root plus /v1" in caught.value.message


def test_an_unknown_object_under_v1_keeps_the_api_s_own_message(client: AgentMailClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_message("msg_doesnotexist")

    assert "/v1" not in caught.value.message

"""``assmbl_mcp.http:app``: the agent's bearer token on every request, checked against the API;
stateless, so any process answers any call; one agent never sees another's mail."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from mcp.types import CallToolResult

from agentmail_client import AgentMailClient
from assmbl_mcp.http import McpHttpApp, TokenCache
from mail.models import Message
from tests.assmbl_mcp.conftest import Connect, UvicornThread
from tests.conftest import free_port
from tests.sdk.conftest import LiveAgent

HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def list_inbox(url: str, token: str | None) -> httpx.Response:
    headers = dict(HEADERS) | ({"Authorization": f"Bearer {token}"} if token else {})
    return httpx.post(url, json=rpc("tools/call", {"name": "list_inbox", "arguments": {}}), headers=headers)


def test_it_answers_401_with_the_api_envelope_without_a_bearer_token(mcp_url: str) -> None:
    response = list_inbox(mcp_url, None)

    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthenticated"


def test_it_answers_the_apis_401_to_a_token_the_api_does_not_know(mcp_url: str) -> None:
    response = list_inbox(mcp_url, "amk_000000000000_forged")

    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


def test_it_refuses_an_operator_token_as_the_api_does(mcp_url: str, operator_token: str) -> None:
    response = list_inbox(mcp_url, operator_token)

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_a_tool_call_needs_no_session_so_any_process_answers_it(
    mcp_url: str, live_agent: LiveAgent, receive: Any
) -> None:
    receive(live_agent, subject="Stateless")

    response = list_inbox(mcp_url, live_agent.token)

    assert response.status_code == 200 and "mcp-session-id" not in response.headers
    result = response.json()["result"]
    assert [item["Subject"] for item in result["structuredContent"]["items"]] == ["Stateless"]


def test_a_token_revoked_after_its_check_is_refused_at_the_next_tool_call(
    http: Connect, live_agent: LiveAgent, operator_token: str
) -> None:
    async def scenario() -> tuple[CallToolResult, CallToolResult]:
        async with http(live_agent) as session:
            before = await session.call_tool("list_inbox", {})
            with AgentMailClient(live_agent.base_url, operator_token) as operator:
                await anyio.to_thread.run_sync(operator.rotate_agent_token, live_agent.agent.agent_id)
            return before, await session.call_tool("list_inbox", {})

    before, after = anyio.run(scenario)

    assert before.is_error is False
    assert after.is_error is True and after.structured_content["error"]["code"] == "invalid_token"  # type: ignore[index]


def test_agents_calling_at_once_each_see_only_their_own_mail(
    http: Connect, live_agent: LiveAgent, other_agent: LiveAgent, receive: Any
) -> None:
    receive(live_agent, subject="For sdkagent only")
    mine = Message.objects.get(agent=live_agent.agent).id
    receive(other_agent, subject="For otheragent only")

    async def subjects(agent: LiveAgent, seen: list[str]) -> None:
        async with http(agent) as session:
            for _ in range(5):
                result = await session.call_tool("list_inbox", {})
                seen.extend(item["Subject"] for item in result.structured_content["items"])  # type: ignore[index]

    async def scenario() -> tuple[list[str], list[str], CallToolResult]:
        alice: list[str] = []
        bob: list[str] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(subjects, live_agent, alice)
            tg.start_soon(subjects, other_agent, bob)
        async with http(other_agent) as session:
            theirs = await session.call_tool("get_message", {"message_id": mine})
        return alice, bob, theirs

    alice, bob, theirs = anyio.run(scenario)

    assert set(alice) == {"For sdkagent only"} and set(bob) == {"For otheragent only"}
    assert theirs.is_error is True and theirs.structured_content["error"]["status"] == 404  # type: ignore[index]


def test_it_serves_when_run_directly_with_its_own_lifespan(base_url: str, live_agent: LiveAgent) -> None:
    port = free_port()
    with UvicornThread(McpHttpApp(base_url), port):
        response = list_inbox(f"http://127.0.0.1:{port}/anything", live_agent.token)

    assert response.status_code == 200 and response.json()["result"]["structuredContent"]["items"] == []


def test_the_token_cache_keeps_a_checked_token_for_its_ttl_only_and_never_the_token() -> None:
    cache = TokenCache(ttl=60, size=2)
    cache.remember("amk_a")
    cache.remember("amk_b")
    cache.remember("amk_c")

    assert not cache.fresh("amk_a") and cache.fresh("amk_b") and cache.fresh("amk_c")
    assert "amk_b" not in repr(cache._checked)
    expired = TokenCache(ttl=0)
    expired.remember("amk_b")
    assert not expired.fresh("amk_b")


def test_it_answers_502_transport_error_when_the_api_is_out_of_reach() -> None:
    port = free_port()
    with UvicornThread(McpHttpApp(f"http://127.0.0.1:{free_port()}/v1"), port):
        response = list_inbox(f"http://127.0.0.1:{port}/mcp", "amk_000000000000_any")

    assert response.status_code == 502 and response.json()["error"]["code"] == "transport_error"

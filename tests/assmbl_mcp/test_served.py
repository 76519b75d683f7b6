"""/mcp as `manage.py serve` serves it: the web server's router (assmbl/asgi.py under
gunicorn's ASGI worker, web_command) mounts the MCP app, which calls the same server's /v1
with the caller's token."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from assmbl.management.commands.serve import web_command
from directory.models import Account
from directory.services import agent_create
from mail.models import Message
from tests.conftest import free_port
from tests.factories import MessageFactory
from tests.reliability.procs import ROOT, child_env, stop, wait_for_port
from tests.webhooks.test_events_waiting import _answering

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def served(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = child_env(tmp_path, HTTP_PORT=str(port), LOG_LEVEL="WARNING")
    env.pop("MCP_API_BASE_URL", None)
    web = subprocess.Popen(
        web_command(port, 1, 4), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, web, timeout=60)
        url = f"http://127.0.0.1:{port}"
        _answering(url)
        yield url
    finally:
        stop(web)


def test_the_served_mcp_endpoint_lists_an_agents_inbox_with_its_token(served: str) -> None:
    agent, issued = agent_create(agent_id="mcp-served", account=Account.objects.create(name="mcp"))
    message: Message = MessageFactory.create(agent=agent, subject="Served through /mcp")

    async def scenario() -> Any:
        headers = {"Authorization": f"Bearer {issued.plaintext}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as client:
            async with Client(streamable_http_client(f"{served}/mcp/", http_client=client)) as session:
                tools = {tool.name for tool in (await session.list_tools()).tools}
                return tools, await session.call_tool("list_inbox", {})

    tools, result = anyio.run(scenario)

    assert {"list_inbox", "get_message", "wait_for_message", "send_message"} <= tools
    assert not result.is_error, result.content
    assert [item["MessageID"] for item in result.structured_content["items"]] == [message.id]


def test_the_served_mcp_endpoint_refuses_a_call_without_a_token(served: str) -> None:
    response = httpx.post(f"{served}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"

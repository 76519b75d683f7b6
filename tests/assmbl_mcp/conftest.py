"""The MCP server against a live service: pytest-django's ``live_server`` for the API, the
installed ``assmbl-mcp`` over stdio, and ``assmbl_mcp.http:app`` mounted at /mcp under uvicorn,
all driven by the official ``mcp`` client."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Mount

from assmbl_mcp.http import McpHttpApp
from tests.conftest import free_port
from tests.sdk.conftest import LiveAgent, base_url, live_account, live_agent, operator_token, other_agent, receive

__all__ = ["base_url", "live_account", "live_agent", "operator_token", "other_agent", "receive"]

# The console script `pip install -e .` put beside this interpreter.
ASSMBL_MCP = Path(sys.executable).parent / "assmbl-mcp"

Connect = Callable[[LiveAgent], AbstractAsyncContextManager[Client]]


@pytest.fixture(autouse=True)
def embedded_backend(settings: Any) -> None:
    # pytest-django swaps in the locmem backend; agent-to-agent mail needs the embedded one.
    settings.EMAIL_BACKEND = "mail.backends.LocalEmailBackend"


@pytest.fixture
def stdio() -> Connect:
    """An MCP client session with ``assmbl-mcp`` spawned for one agent, as a host launches it."""
    if not ASSMBL_MCP.exists():
        pytest.fail(f"{ASSMBL_MCP} is missing: run `pip install -e .` in this venv")

    def connect(agent: LiveAgent) -> AbstractAsyncContextManager[Client]:
        env = {"AGENTMAIL_API_BASE_URL": agent.base_url, "AGENTMAIL_TOKEN": agent.token}
        return Client(StdioServerParameters(command=str(ASSMBL_MCP), env=env))

    return connect


class UvicornThread(threading.Thread):
    def __init__(self, app: Any, port: int) -> None:
        super().__init__(daemon=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def run(self) -> None:
        self.server.run()

    def __enter__(self) -> UvicornThread:
        self.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.join(10)


@pytest.fixture
def mcp_url(base_url: str) -> Iterator[str]:
    """``assmbl_mcp.http:app`` mounted at /mcp of a tiny ASGI router, as the service mounts it,
    calling the live API."""
    port = free_port()
    router = Starlette(routes=[Mount("/mcp", app=McpHttpApp(base_url))])
    with UvicornThread(router, port):
        yield f"http://127.0.0.1:{port}/mcp/"


@pytest.fixture
def http(mcp_url: str) -> Connect:
    """An MCP client session over streamable HTTP with the agent's bearer token."""

    @asynccontextmanager
    async def connect(agent: LiveAgent) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {agent.token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=330)) as client:
            async with Client(streamable_http_client(mcp_url, http_client=client)) as session:
                yield session

    return connect


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """Each test once over stdio and once over streamable HTTP."""
    return request.getfixturevalue(str(request.param))  # type: ignore[no-any-return]

"""``assmbl-mcp``: the tools over stdio for one agent (``AGENTMAIL_API_BASE_URL``,
``AGENTMAIL_TOKEN``), as Claude Desktop, Claude Code and other MCP hosts launch it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import MCPServer

from assmbl_mcp.api import Connector
from assmbl_mcp.server import build_server

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def settings(environ: Mapping[str, str]) -> tuple[str, str]:
    """(base URL, token) from the SDK's variables; SystemExit naming the variable when the
    token is missing (stdout is the protocol's, so the message goes to stderr)."""
    token = environ.get("AGENTMAIL_TOKEN", "").strip()
    if not token:
        raise SystemExit("assmbl-mcp: set AGENTMAIL_TOKEN to the agent's API token (amk_...)")
    return environ.get("AGENTMAIL_API_BASE_URL", "").strip() or DEFAULT_BASE_URL, token


def connect(base_url: str, token: str) -> Any:
    """The lifespan holding one agent's ``Connector`` for the server's life."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[Connector]:
        # The SDK's long-polls add their wait to this timeout per request.
        async with httpx.AsyncClient(timeout=30.0) as http:
            yield Connector(base_url=base_url, token=token, http=http)

    return lifespan


def main() -> None:
    base_url, token = settings(os.environ)
    build_server(lifespan=connect(base_url, token)).run("stdio")


if __name__ == "__main__":  # pragma: no cover
    main()

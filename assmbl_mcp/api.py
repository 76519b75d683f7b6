"""Which API client a tool call uses: the agent's token against the service's base URL.

Over stdio there is one agent (``AGENTMAIL_TOKEN``), held by the server's lifespan; over HTTP
each request brings its own bearer token, and ``assmbl_mcp.http`` puts that request's client
in the ASGI scope. Either way one ``httpx.AsyncClient`` (its connection pool) serves every
call, and each call gets its own light SDK client, so that one wait's event cursor is never
another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from mcp.server.mcpserver import Context

from agentmail_client import AsyncAgentMailClient

# The key under which assmbl_mcp.http leaves the request's API client in the ASGI scope.
SCOPE_KEY = "assmbl_mcp.api"


@dataclass(frozen=True)
class Connector:
    """An agent's token against a base URL, over a shared connection pool."""

    base_url: str
    token: str
    http: httpx.AsyncClient

    def client(self) -> AsyncAgentMailClient:
        # The pool is shared and closed by its owner: this client is never closed.
        return AsyncAgentMailClient(self.base_url, self.token, http_client=self.http)


def api(ctx: Context[Any, Any]) -> AsyncAgentMailClient:
    """The API client for this tool call: the HTTP request's, else the stdio server's."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    connector = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    if isinstance(connector, Connector):
        return connector.client()
    lifespan = ctx.request_context.lifespan_context
    if isinstance(lifespan, Connector):
        return lifespan.client()
    raise RuntimeError("no Assmbl Mail API client for this call: serve the tools through assmbl_mcp.stdio or .http")

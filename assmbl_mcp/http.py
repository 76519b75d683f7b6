"""Streamable HTTP: ``assmbl_mcp.http:app``, an ASGI app that serves the tools to any agent
that brings its own bearer token, mounted by the service at ``/mcp``.

Stateless (no MCP session is kept between requests; answers are JSON), so any number of
processes behind a load balancer serve the same agent. The token is checked against the API
(``GET /v1/inbox/unread-count``) once per ``AUTH_CACHE_SECONDS``: a request without a valid
agent token gets the API's 401 (or 403) envelope. The API checks the token again on every tool
call, so a revoked token stops working there at once.

The app serves every path it is given (mount it where it should answer) and runs its own
lifespan; a parent that does not forward the ASGI lifespan still works, the app starting its
session manager on the first request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import OrderedDict
from contextlib import AsyncExitStack
from typing import Any

import httpx
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from agentmail_client import AsyncAgentMailClient
from agentmail_client.errors import AgentMailError
from assmbl_mcp.api import SCOPE_KEY, Connector
from assmbl_mcp.server import build_server

AUTH_CACHE_SECONDS = 30.0
AUTH_CACHE_SIZE = 4096
# How long one API request may take, on top of a long-poll's own wait.
API_TIMEOUT = 30.0


def default_base_url() -> str:
    """``MCP_API_BASE_URL``, else the service on this machine's ``HTTP_PORT``."""
    configured = os.environ.get("MCP_API_BASE_URL", "").strip()
    return configured or f"http://127.0.0.1:{os.environ.get('HTTP_PORT', '8000').strip() or '8000'}/v1"


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


async def send_error(send: Send, status: int, code: str, message: str, details: Any = None) -> None:
    """The API's error envelope, so an MCP client sees the same answer as a REST one."""
    body = json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="api"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TokenCache:
    """Tokens the API accepted recently, by their SHA-256 (never the token itself), with the
    time each was checked; the oldest go first past ``size``."""

    def __init__(self, ttl: float = AUTH_CACHE_SECONDS, size: int = AUTH_CACHE_SIZE) -> None:
        self.ttl, self.size = ttl, size
        self._checked: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def fresh(self, token: str) -> bool:
        checked = self._checked.get(self.key(token))
        return checked is not None and time.monotonic() - checked < self.ttl

    def remember(self, token: str) -> None:
        key = self.key(token)
        self._checked.pop(key, None)
        self._checked[key] = time.monotonic()
        while len(self._checked) > self.size:
            self._checked.popitem(last=False)


class McpHttpApp:
    """The ASGI app. ``transport`` (an ``httpx.AsyncBaseTransport``, e.g. ``httpx.ASGITransport``
    over the service's own ASGI app) lets the tools reach the API without a socket."""

    def __init__(self, api_base_url: str | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.api_base_url = api_base_url or default_base_url()
        self.transport = transport
        self.tokens = TokenCache()
        server = build_server()
        # Only to configure the session manager; this app routes by itself, on any path.
        server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            # A bearer token, not the caller's network, authorises a request, and the service
            # answers on its public host names: the localhost-only host check would refuse them.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.sessions = server.session_manager
        self._stack: AsyncExitStack | None = None
        self._http: httpx.AsyncClient | None = None
        self._starting = asyncio.Lock()
        self._holder: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.serve(scope, receive, send)

    async def startup(self) -> None:
        if self._stack is None:
            stack = AsyncExitStack()
            self._http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=API_TIMEOUT, transport=self.transport)
            )
            await stack.enter_async_context(self.sessions.run())
            self._stack = stack

    async def shutdown(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"assmbl_mcp: {exc!r}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start_in_background(self) -> None:
        """Start as a lifespan would, for a parent that does not forward it: in a task of its
        own, since the session manager's task group must be left by the task that entered it."""
        async with self._starting:
            if self._holder is None:
                ready = asyncio.Event()

                async def hold() -> None:
                    try:
                        await self.startup()
                    finally:
                        ready.set()  # a failed start must not leave requests waiting
                    await asyncio.Event().wait()  # until the loop ends

                self._holder = asyncio.get_running_loop().create_task(hold())
                self._ready = ready
        await self._ready.wait()

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._stack is None:
            await self.start_in_background()
        if self._http is None:
            await send_error(
                send, 503, "service_unavailable", "The MCP endpoint could not start; see the server's log."
            )
            return
        token = bearer_token(scope)
        if token is None:
            await send_error(send, 401, "unauthenticated", "Send the agent's token: Authorization: Bearer <token>.")
            return
        connector = Connector(base_url=self.api_base_url, token=token, http=self._http)
        if not self.tokens.fresh(token):
            try:
                await self.check(connector.client())
            except AgentMailError as exc:
                await send_error(send, exc.status or 502, exc.code, exc.message, exc.details)
                return
            self.tokens.remember(token)
        await self.sessions.handle_request({**scope, SCOPE_KEY: connector}, receive, send)

    @staticmethod
    async def check(client: AsyncAgentMailClient) -> None:
        """Raises the API's error unless the token is an agent token it accepts now."""
        await client.get_unread_count()


app = McpHttpApp()

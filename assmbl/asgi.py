"""What the web server loads (``gunicorn -k compat.gunicorn.ASGIWorker assmbl.asgi:application``,
``manage.py serve``): a path router in front of the service.

- ``/mcp``: the MCP server's streamable HTTP app, when mounted (``MOUNTS``).
- everything else: the WSGI application of assmbl/wsgi.py, exactly as a WSGI server runs it
  (every middleware, view and error page unchanged), each request on a thread of a pool of
  ``WEB_THREADS``, its body streamed to it as it reads, its response streamed back.

A request the view answers with a wait (``GET /v1/events?wait=`` with nothing to return yet,
``GET /v1/events/stream``: webhooks/waits.py) gives its thread back at once and waits on the
event loop, so a waiting agent holds no thread, and a thread is there for everyone else.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from assmbl.env import env_int
from assmbl.wsgi import application as wsgi_application
from assmbl_mcp.http import app as mcp_http_app
from compat.gunicorn import DRAIN_ALLOWANCE_BYTES
from webhooks.waits import ASYNC_WAITS, Deferred, stream_events, wait_page

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

POOL = ThreadPoolExecutor(max_workers=env_int("WEB_THREADS", 8, minimum=1), thread_name_prefix="wsgi")

# Path prefix -> ASGI app, first match wins; anything else goes to the WSGI application.
# /mcp: the agents' MCP tools over streamable HTTP, a client of this service's own /v1
# (MCP_API_BASE_URL, by default this machine's HTTP_PORT), so it holds no rule of its own.
MOUNTS: list[tuple[str, ASGIApp]] = [("/mcp", mcp_http_app)]


class RequestBody(io.RawIOBase):
    """wsgi.input on a worker thread: reads the ASGI body messages as the app asks for them,
    so an app that refuses a body (413) has not had it buffered first."""

    def __init__(self, receive: Receive, loop: asyncio.AbstractEventLoop) -> None:
        self.receive, self.loop = receive, loop
        self.buffer = bytearray()
        self.done = False
        self.received = 0

    def _fill(self) -> bool:
        if self.done:
            return False
        message = asyncio.run_coroutine_threadsafe(self.receive(), self.loop).result()
        if message["type"] != "http.request":
            self.done = True  # http.disconnect
            return False
        self.buffer += message.get("body", b"")
        self.received += len(message.get("body", b""))
        self.done = not message.get("more_body", False)
        return True

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while (size is None or size < 0 or len(self.buffer) < size) and self._fill():
            pass
        n = len(self.buffer) if size is None or size < 0 else min(size, len(self.buffer))
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        while b"\n" not in self.buffer and (size is None or size < 0 or len(self.buffer) < size) and self._fill():
            pass
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data


def wsgi_environ(scope: Scope, body: RequestBody) -> dict[str, Any]:
    """PEP 3333's environ for an ASGI HTTP scope (as asgiref's WsgiToAsgi builds it)."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        # The server has de-chunked the body: assmbl.chunked reads it to its end.
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        ASYNC_WAITS: True,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").upper().replace("-", "_"), raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


async def _start(send: Send, status: str, headers: list[tuple[str, str]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": int(status.split(" ", 1)[0]),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )


def _run_wsgi(scope: Scope, receive: Receive, send: Send, loop: asyncio.AbstractEventLoop) -> Deferred | None:
    """On a pool thread: run the WSGI app and stream its answer, or return its Deferred."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started[:] = [status, headers]
        return lambda data: None  # the legacy write(); Django never calls it

    def call(coro: Awaitable[None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, loop).result()  # type: ignore[arg-type]

    body = RequestBody(receive, loop)
    environ = wsgi_environ(scope, body)
    result: Iterable[bytes] = wsgi_application(environ, start_response)
    try:
        deferred: Deferred | None = getattr(result, "deferred", None)
        if deferred is not None:
            return deferred
        if _unread_beyond_drain(environ, body):
            started[1] = [*started[1], ("Connection", "close")]
        head_sent = False
        for chunk in result:
            if not head_sent:
                call(_start(send, *started))
                head_sent = True
            if chunk:
                call(send({"type": "http.response.body", "body": chunk, "more_body": True}))
        if not head_sent:
            call(_start(send, *started))
        call(send({"type": "http.response.body", "body": b"", "more_body": False}))
        return None
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _unread_beyond_drain(environ: dict[str, Any], body: RequestBody) -> bool:
    """The answer leaves more of the body unread than the server drains after it (a 413,
    a refused upload): it says ``Connection: close``, so the client does not reuse a
    connection the server is about to drop (compat/gunicorn.py, DRAIN_ALLOWANCE_BYTES)."""
    if body.done:
        return False
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    if declared:
        return declared - body.received > DRAIN_ALLOWANCE_BYTES
    return "HTTP_TRANSFER_ENCODING" in environ


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer_wait(deferred: Deferred, receive: Receive, send: Send) -> None:
    if deferred.stream:
        await _start(
            send,
            "200 OK",
            [("Content-Type", "text/event-stream"), ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")],
        )
        gone = asyncio.ensure_future(_until_disconnect(receive))
        events = stream_events(POOL, deferred)
        try:
            async for chunk in events:
                if gone.done():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            pass  # the client went away mid-write
        finally:
            gone.cancel()
            await events.aclose()
        return
    body = await wait_page(POOL, deferred, _until_disconnect(receive))
    if body is None:
        return
    payload = json.dumps(body).encode()
    await _start(send, "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope.get("path", "")
    for prefix, app in MOUNTS:
        if path == prefix or path.startswith(prefix + "/"):
            await app(scope, receive, send)
            return
    if scope["type"] != "http":
        return  # websockets: none served
    loop = asyncio.get_running_loop()
    deferred = await loop.run_in_executor(POOL, _run_wsgi, scope, receive, send, loop)
    if deferred is not None:
        await _answer_wait(deferred, receive, send)

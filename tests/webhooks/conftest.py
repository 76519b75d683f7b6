"""A real HTTP receiver on 127.0.0.1 (http.server in a thread) that answers from a script,
and a spy on the socket layer that records every outbound connection attempt."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    reset: bool = False  # close the connection without answering


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first (a delayed reply): what the test wants

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True


@pytest.fixture
def receiver(loopback_allowed: None) -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connect attempt the test's own thread makes, by address (egress_request runs
    on its caller's thread). Threads an earlier test left behind in this worker process
    (a client's reconnect loop, a broker's heartbeat) connect to loopback too, and would
    land in the list at random. Non-loopback attempts are refused from every thread, so a
    bug in the guard can never send traffic to a private (or any) network from a test."""
    attempts: list[Any] = []
    test_thread = threading.get_ident()
    real_connect = socket.socket.connect
    real_create = socket.create_connection

    def _allowed(address: Any) -> bool:
        return isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1")

    def _record(address: Any) -> None:
        if threading.get_ident() == test_thread:
            attempts.append(address)

    def connect(self: socket.socket, address: Any) -> Any:
        _record(address)
        if not _allowed(address):
            raise ConnectionRefusedError(f"test spy blocked a connection to {address!r}")
        return real_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        # Allowed calls are recorded by the connect() they make underneath.
        if not _allowed(address):
            _record(address)
            raise ConnectionRefusedError(f"test spy blocked a connection to {address!r}")
        return real_create(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempts

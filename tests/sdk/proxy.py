"""Real sockets that misbehave: a loopback TCP proxy that can drop a connection after
forwarding the request (the server did the work, the client never hears back), and a tiny
HTTP server that answers from a script (429, 503...)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def read_http_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 request or response with a Content-Length body (all httpx and Django
    send here); b"" when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


class DroppingProxy:
    """Forwards HTTP requests to ``upstream``. The first ``drop`` requests reach the server,
    whose answer is read and thrown away, and the client's connection is closed instead."""

    def __init__(self, upstream: tuple[str, int], *, drop: int = 1) -> None:
        self.upstream = upstream
        self.drop = drop
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(self.upstream) as up:
            while True:
                request = read_http_message(conn)
                if not request:
                    return
                with self.lock:
                    self.requests.append(request)
                    dropping = self.drop > 0
                    self.drop -= 1 if dropping else 0
                up.sendall(request)
                response = read_http_message(up)
                if dropping:
                    return  # closes the client's connection without a byte of the answer
                conn.sendall(response)

    def close(self) -> None:
        self.closed = True
        self.listener.close()


@dataclass
class Scripted:
    status: int
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedServer:
    """An HTTP server on 127.0.0.1 answering each request with the next scripted reply
    (then 200 ``{"ok": true}``), recording method, path and headers."""

    def __init__(self, script: list[Scripted]) -> None:
        self.script = list(script)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                reply = server.script.pop(0) if server.script else Scripted(200, {"ok": True})
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str = "/v1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

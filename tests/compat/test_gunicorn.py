"""compat.gunicorn: the installed gunicorn is one it was checked against, and the web
server as `manage.py serve` starts it (web_command: gunicorn with
compat.gunicorn.ASGIWorker, serving assmbl/asgi.py), over raw sockets: every /v1 answer is the JSON
envelope, including what gunicorn refuses before the app sees it, a 413 says whether the
connection stays open, and a chunked body reaches the API (issue 21, item 8)."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gunicorn.http.parser
import pytest
from gunicorn.http.errors import LimitRequestLine, NoMoreData

from assmbl.envelope import error_body
from assmbl.management.commands.serve import web_command
from compat.gunicorn import CHECKED_VERSIONS, DRAIN_ALLOWANCE_BYTES, error_reply
from directory.models import Account, Agent, ApiToken
from directory.services import token_create
from tests.conftest import free_port
from tests.reliability.procs import ROOT, child_env, stop, wait_for_port

pytestmark = pytest.mark.timeout(120)

# Small limits, so that a body past them is still small to send; 64 KiB is what gunicorn
# drains after a response before it gives up.
LIMIT = 4096


def test_the_installed_gunicorn_is_one_the_worker_was_checked_against() -> None:
    installed = importlib.metadata.version("gunicorn")
    assert installed in CHECKED_VERSIONS, (
        f"gunicorn {installed} is installed, but compat/gunicorn.py was checked against {CHECKED_VERSIONS}: "
        "re-check the internals its docstring lists (Worker.handle_error and load_wsgi, Response.force_close, "
        "_DRAIN_MAX_BYTES, default_environ, util.write_nonblock), run tests/compat/test_gunicorn.py, then add "
        "the version to CHECKED_VERSIONS."
    )


def test_the_drain_allowance_is_what_gunicorn_drains() -> None:
    assert getattr(gunicorn.http.parser, "_DRAIN_MAX_BYTES", None) == DRAIN_ALLOWANCE_BYTES


@pytest.mark.parametrize("exc", [LimitRequestLine(9000, 8190), NoMoreData(), RuntimeError("bug")])
def test_its_error_bodies_are_the_apis_envelope(exc: BaseException) -> None:
    _, _, body = error_reply(exc)
    envelope = json.loads(body)
    assert envelope == error_body(envelope["error"]["code"], envelope["error"]["message"])


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def error_code(self) -> str:
        assert self.headers["content-type"] == "application/json", self.headers
        envelope = json.loads(self.body)
        assert set(envelope) == {"error"} and set(envelope["error"]) == {"code", "message", "details"}
        return str(envelope["error"]["code"])


class Connection:
    """One HTTP/1.1 connection, spoken by hand: the requests here are ones no client sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def request(self, head: bytes, body: bytes = b"") -> Reply:
        try:
            self.sock.sendall(head + b"\r\n" + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; its answer is still readable
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return Reply(status, headers, self._take(int(headers["content-length"])))
        chunks = b""
        while size := int(self._line(), 16):
            chunks += self._take(size)
            self._take(2)
        self._take(2)
        return Reply(status, headers, chunks)

    def closed_by_server(self) -> bool:
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def get(path: str, *headers: bytes, host: bytes = b"127.0.0.1") -> bytes:
    return b"\r\n".join([b"GET " + path.encode() + b" HTTP/1.1", b"Host: " + host, *headers]) + b"\r\n"


def post(path: str, body: bytes, *headers: bytes) -> tuple[bytes, bytes]:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Content-Type: application/json", *headers]
    if not any(h.lower().startswith(b"transfer-encoding") for h in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n", body


def chunked(data: bytes, size: int = 50) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.fixture(scope="module")
def server(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    data_dir: Path = tmp_path_factory.mktemp("web")
    env = child_env(data_dir, MAX_REQUEST_BYTES=str(LIMIT), MAX_ATTACHMENT_BYTES=str(LIMIT), LOG_LEVEL="WARNING")
    web = subprocess.Popen(
        web_command(port, 1, 4), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, web, timeout=60)
        yield port
    finally:
        stop(web)


def test_a_5000_character_q_reaches_the_api_and_gets_its_json_400(
    server: int, transactional_db: Any, owner: Any
) -> None:
    with Connection(server) as http:
        reply = http.request(get("/v1/inbox?q=" + "a" * 5000, f"Authorization: Bearer {owner.token}".encode()))
    assert reply.status == 400
    assert reply.error_code() == "query_too_long"


def test_a_request_line_over_the_servers_limit_is_a_json_414(server: int) -> None:
    with Connection(server) as http:
        reply = http.request(get("/v1/inbox?cursor=" + "a" * 10_000))
        assert reply.status == 414
        assert reply.error_code() == "uri_too_long"
        assert reply.headers["connection"] == "close" and http.closed_by_server()


def test_a_100_kb_token_is_a_json_431(server: int) -> None:
    with Connection(server) as http:
        reply = http.request(get("/v1/inbox", b"Authorization: Bearer " + b"a" * 100_000))
    assert reply.status == 431
    assert reply.error_code() == "header_too_large"
    assert reply.headers["connection"] == "close"


@pytest.mark.parametrize("value", [b"Bearer amk_\x00x", b"Bearer \x01\x7f", b"Bearer a\x0bb"])
def test_a_control_character_in_the_authorization_header_is_a_json_400(server: int, value: bytes) -> None:
    with Connection(server) as http:
        reply = http.request(get("/v1/inbox", b"Authorization: " + value))
    assert reply.status == 400
    assert reply.error_code() == "bad_request"
    # gunicorn's ASGI parser does not name the header (its WSGI parser did).
    assert "header" in json.loads(reply.body)["error"]["message"]


def test_a_disallowed_host_is_a_json_400(server: int) -> None:
    with Connection(server) as http:
        reply = http.request(get("/v1/inbox", host=b"evil.example"))
    assert reply.status == 400
    assert reply.error_code() == "invalid_host"


def test_a_413_to_a_body_too_big_to_drain_says_close_and_closes(server: int) -> None:
    with Connection(server) as http:
        reply = http.request(*post("/v1/send", b"x" * 200_000))
        assert reply.status == 413
        assert reply.error_code() == "payload_too_large"
        assert reply.headers["connection"] == "close"
        assert http.closed_by_server()


def test_a_413_to_a_body_the_server_drains_keeps_the_connection_alive(server: int) -> None:
    with Connection(server) as http:
        reply = http.request(*post("/v1/send", b"x" * (LIMIT + 1)))
        assert reply.status == 413
        assert reply.headers.get("connection", "keep-alive") == "keep-alive"  # HTTP/1.1's default
        again = http.request(get("/v1/inbox"))
    assert again.status == 401 and again.error_code() == "unauthenticated"


def test_any_refusal_that_leaves_a_large_body_unread_says_close(server: int, transactional_db: Any) -> None:
    # The upload URL's signature is checked before its body is read (and the upload is
    # exempt from the JSON cap, so this is a 403, not a 413).
    with Connection(server) as http:
        head, body = post("/v1/attachments/att_x/upload?expires=1&signature=x", b"x" * 200_000)
        reply = http.request(head.replace(b"POST", b"PUT", 1), body)
        assert reply.status == 403, reply.body
        reply.error_code()
        assert reply.headers["connection"] == "close"
        assert http.closed_by_server()


@pytest.fixture
def operator_token(transactional_db: Any, account: Account) -> bytes:
    return b"Authorization: Bearer " + token_create(kind=ApiToken.Kind.OPERATOR, account=account).plaintext.encode()


def test_a_chunked_body_is_read_by_the_api(server: int, operator_token: bytes) -> None:
    body = json.dumps({"agent_id": "chunky", "display_name": "Sent in chunks " + "x" * 150}).encode()
    with Connection(server) as http:
        head, _ = post("/v1/agents", b"", operator_token, b"Transfer-Encoding: chunked")
        reply = http.request(head, chunked(body))
        assert reply.status == 201, reply.body
        assert reply.headers.get("connection", "keep-alive") == "keep-alive"  # HTTP/1.1's default
        again = http.request(get("/v1/agents/chunky", operator_token))
    assert again.status == 200
    assert Agent.objects.get(agent_id="chunky").display_name.startswith("Sent in chunks")


def test_a_chunked_body_over_the_limit_is_a_json_413_and_closes(server: int, operator_token: bytes) -> None:
    with Connection(server) as http:
        head, _ = post("/v1/agents", b"", operator_token, b"Transfer-Encoding: chunked")
        reply = http.request(head, chunked(b"x" * 200_000))
        assert reply.status == 413
        assert reply.error_code() == "payload_too_large"
        assert reply.headers["connection"] == "close"
    assert not Agent.objects.exists()

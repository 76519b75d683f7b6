"""The web server's worker (``--worker-class compat.gunicorn.ThreadWorker``): gunicorn's
gthread worker, with two changes that API clients need.

- What gunicorn refuses before the application sees a request (a request line over
  ``--limit-request-line``, a header over ``--limit-request-field_size``, a NUL or other
  control character in a header, a malformed chunk) is answered with the API's JSON error
  envelope, not gunicorn's HTML page: an agent parses every error body.
- A response that leaves more of the request body unread than gunicorn drains after it
  (64 KiB) says ``Connection: close``. gunicorn decides keep-alive before it tries to
  drain, so a 413 (or 401) to a large body claimed keep-alive, then the drain gave up and
  the connection closed under a client about to reuse it.

gunicorn imports this module in its arbiter, before Django is set up: no Django here,
and (as all of ``compat``) no first-party import: the JSON envelope is built here, in the
shape of ``assmbl.envelope.error_body`` (tests/compat/test_gunicorn.py compares them).

gunicorn internals relied on (re-check each on an upgrade):

- ``Worker.handle_error(req, client, addr, exc)``: the method gunicorn calls for a request
  it could not read; overridden whole (its log lines and access log entry, then our body).
- ``Worker.load_wsgi()`` setting ``self.wsgi``: wrapped to count what the app reads.
- ``start_response.__self__`` being the ``gunicorn.http.wsgi.Response``, whose
  ``force_close()`` makes it send ``Connection: close``, decided when the headers go out.
- ``gunicorn.http.parser._DRAIN_MAX_BYTES``: what it drains after a response
  (``DRAIN_ALLOWANCE_BYTES`` mirrors it).
- ``gunicorn.http.wsgi.default_environ``, ``Response(req, sock, cfg)`` and
  ``util.write_nonblock``, used as gunicorn's own ``handle_error`` uses them.

Differential test: tests/compat/test_gunicorn.py starts the server as ``serve``
does and checks every answer over raw sockets.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from gunicorn import util
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import gasgi, gthread

# The gunicorn releases this module was read against; tests/compat/test_gunicorn.py fails
# on any other, naming what to re-check (the list above).
CHECKED_VERSIONS = ("27.0.1",)

# What gunicorn reads and discards after a response before it gives up and closes
# (gunicorn.http.parser._DRAIN_MAX_BYTES).
DRAIN_ALLOWANCE_BYTES = 64 * 1024

# First match wins (InvalidResponseHeader is an InvalidHeader, and the application's fault).
_ERRORS: list[tuple[tuple[type[BaseException], ...], int, str, str, str]] = [
    (
        (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem),
        500,
        "Internal Server Error",
        "internal_error",
        "Something went wrong on our side.",
    ),
    (
        (LimitRequestLine,),
        414,
        "URI Too Long",
        "uri_too_long",
        "The request line (method, path and query string) is too long.",
    ),
    (
        (LimitRequestHeaders,),
        431,
        "Request Header Fields Too Large",
        "header_too_large",
        "A request header, or the number of headers, is over the limit.",
    ),
    (
        (UnsupportedTransferCoding,),
        501,
        "Not Implemented",
        "not_implemented",
        "The Transfer-Encoding is not supported (chunked is).",
    ),
    (
        (ExpectationFailed,),
        417,
        "Expectation Failed",
        "expectation_failed",
        "Only 'Expect: 100-continue' is supported.",
    ),
    ((ForbiddenProxyRequest, ssl.SSLError), 403, "Forbidden", "forbidden", "The request is forbidden."),
    ((ParseException,), 400, "Bad Request", "bad_request", "The request is not valid HTTP"),
]


def error_body(code: str, message: str) -> dict[str, Any]:
    """The API's error envelope (docs/api.md), as ``assmbl.envelope.error_body`` builds it."""
    return {"error": {"code": code, "message": message, "details": None}}


def error_reply(exc: BaseException) -> tuple[int, str, bytes]:
    """Status, reason and JSON envelope for an exception gunicorn raised while reading a request."""
    status, reason, code, message = next(
        (entry[1:] for entry in _ERRORS if isinstance(exc, entry[0])),
        (500, "Internal Server Error", "internal_error", "Something went wrong on our side."),
    )
    if status == 400:
        # Which header or what in the line: str() of gunicorn's parse errors names it.
        message = f"{message}: {str(exc)[:200]}."
    return status, reason, json.dumps(error_body(code, message)).encode()


class _CountingInput:
    """wsgi.input, counting what the application reads of it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.read_bytes = 0
        self.at_end = False

    def _seen(self, data: bytes, asked: int | None) -> bytes:
        self.read_bytes += len(data)
        if not data and asked != 0:
            self.at_end = True
        return data

    def read(self, size: int | None = None) -> bytes:
        return self._seen(self.stream.read(size), size)

    def readline(self, size: int | None = None) -> bytes:
        return self._seen(self.stream.readline(size), size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        lines: list[bytes] = self.stream.readlines(hint)
        self.read_bytes += sum(map(len, lines))
        self.at_end = self.at_end or not lines
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _unread_beyond_drain(environ: dict[str, Any], body: _CountingInput) -> bool:
    if body.at_end:
        return False
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    if declared:
        return declared - body.read_bytes > DRAIN_ALLOWANCE_BYTES
    # A chunked body's size is unknown until its last chunk.
    return "HTTP_TRANSFER_ENCODING" in environ


def close_when_body_left_unread(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap the WSGI application: when it answers without reading a body that gunicorn
    could not drain, the response says ``Connection: close`` (gunicorn's Response decides
    that when its headers go out, on the first write, after the application returns)."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"] = _CountingInput(environ["wsgi.input"])
        result = app(environ, start_response)
        if _unread_beyond_drain(environ, body):
            force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if force_close is not None:
                force_close()
        return result

    return wsgi


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]  # gunicorn ships no types
    wsgi: Callable[..., Any]

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = close_when_body_left_unread(self.wsgi)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's handle_error (the log lines, the access log entry), answering with
        the JSON envelope; the connection closes after it, as gunicorn's page says."""
        started = datetime.now()
        addr = addr or ("", -1)  # a unix socket
        status, reason, body = error_reply(exc)
        if status == 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
            req = req or getattr(exc, "req", None)
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            response = Response(req, client, self.cfg)
            response.status = f"{status} {reason}"
            response.response_length = len(body)
            self.log.access(response, req, environ, datetime.now() - started)
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except Exception:
            self.log.debug("Failed to send error message.")


# --- The ASGI worker (manage.py serve: ``--worker-class compat.gunicorn.ASGIWorker``) -------------
# gunicorn's native asyncio worker, with the same JSON envelope for what its parser refuses.
# Internals relied on (re-check on an upgrade): ``ASGIProtocol._send_error_response(status,
# message, extra_headers)``, the one place its protocol writes an error of its own; the
# module global ``gunicorn.workers.gasgi.ASGIProtocol``, which ``ASGIWorker._serve`` looks up
# when it creates each connection's protocol; ``self.cfg.threads``.

_ASGI_ERRORS = {status: (code, message) for _, status, _, code, message in _ERRORS}


class EnvelopeProtocol(gasgi.ASGIProtocol):  # type: ignore[misc]  # gunicorn ships no types
    def _send_error_response(self, status: int, message: str, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        code, text = _ASGI_ERRORS.get(status, ("error", "The request could not be served."))
        if status == 400:
            text = f"{text}: {message[:200]}."
        body = json.dumps(error_body(code, text)).encode()
        reason = _REASONS.get(status, "Error")
        extra = "".join(f"{name}: {value}\r\n" for name, value in extra_headers)
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n"
        )
        self._safe_write(head.encode("latin-1"))
        self._safe_write(body)


_REASONS = {status: reason for _, status, reason, _, _ in _ERRORS}


class ASGIWorker(gasgi.ASGIWorker):  # type: ignore[misc]
    """The app (assmbl/asgi.py) runs sync views on a pool of ``--threads`` threads."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        pass  # gunicorn warns that its ASGI worker ignores --threads: ours passes it on

    def init_process(self) -> None:
        os.environ["WEB_THREADS"] = str(self.cfg.threads)
        gasgi.ASGIProtocol = EnvelopeProtocol
        super().init_process()

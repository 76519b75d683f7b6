"""The WSGI application's outer layer (assmbl/wsgi.py): request bodies sent in chunks."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from assmbl.envelope import TOO_LARGE, error_body


class ChunkedRequestBody:
    """A chunked request body, which gunicorn decodes (``wsgi.input_terminated``) but hands
    on without a CONTENT_LENGTH, is read to its end into a spool and passed on with its
    length. Django reads CONTENT_LENGTH bytes of a body, and DRF none when it is absent, so
    without this such a body would be parsed as empty.

    The spool holds at most the largest body any endpoint takes (an attachment upload); a
    larger body is 413 at once, unread. It stays in memory up to MAX_REQUEST_BYTES, then
    spills to a temporary file.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (
            environ.get("CONTENT_LENGTH")
            or not environ.get("wsgi.input_terminated")
            or "HTTP_TRANSFER_ENCODING" not in environ
        ):
            return self.app(environ, start_response)
        limit = max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0, settings.MAX_ATTACHMENT_BYTES)
        # Freed with the environ at the end of the request (a TemporaryFile has no name).
        spool = tempfile.SpooledTemporaryFile(max_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1024 * 1024)
        size = 0
        while chunk := environ["wsgi.input"].read(min(64 * 1024, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                body = json.dumps(error_body("payload_too_large", TOO_LARGE, {"max_bytes": limit})).encode()
                start_response(
                    "413 Request Entity Too Large",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                return [body]
            spool.write(chunk)
        spool.seek(0)
        environ["wsgi.input"] = spool
        environ["CONTENT_LENGTH"] = str(size)
        return self.app(environ, start_response)

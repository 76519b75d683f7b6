"""assmbl/chunked.py: a chunked request body (gunicorn decodes it, sets wsgi.input_terminated
and no CONTENT_LENGTH) reaches the API whole, through Django's own WSGI handler."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from assmbl.chunked import ChunkedRequestBody
from directory.models import Agent, ApiToken
from directory.services import token_create

pytestmark = pytest.mark.django_db


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """Through Django's WSGIHandler, as gunicorn calls it; like the test client, without
    closing the test's database connection at the end of the request."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.update(status=status, headers=dict(headers))

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(app(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started["status"], started["headers"], body


def _chunked_environ(rf: Any, token: str, body: bytes) -> dict[str, Any]:
    environ = dict(rf.post("/v1/agents", b"", content_type="application/json").environ)
    environ.pop("CONTENT_LENGTH", None)
    environ.update(
        {
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
            "CONTENT_TYPE": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
        }
    )
    return environ


@pytest.fixture
def operator_token(account: Any) -> str:
    return token_create(kind=ApiToken.Kind.OPERATOR, account=account).plaintext


def test_a_chunked_json_body_is_parsed(rf: Any, operator_token: str) -> None:
    environ = _chunked_environ(rf, operator_token, json.dumps({"agent_id": "chunky"}).encode())
    status, _, body = _call(ChunkedRequestBody(WSGIHandler()), environ)
    assert status.startswith("201"), body
    assert Agent.objects.filter(agent_id="chunky").exists()


def test_a_chunked_body_past_the_largest_any_endpoint_takes_is_413_unread(
    rf: Any, operator_token: str, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = settings.MAX_ATTACHMENT_BYTES = 2048
    environ = _chunked_environ(rf, operator_token, b"x" * 10_000)
    status, headers, body = _call(ChunkedRequestBody(WSGIHandler()), environ)
    assert status.startswith("413")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == {
        "code": "payload_too_large",
        "message": "The request body is larger than the limit.",
        "details": {"max_bytes": 2048},
    }
    assert environ["wsgi.input"].tell() <= 2049  # one byte past the limit, no more
    assert not Agent.objects.exists()


def test_a_body_with_a_content_length_is_passed_through_untouched(rf: Any, operator_token: str) -> None:
    request = rf.post("/v1/agents", {"agent_id": "plain"}, content_type="application/json")
    environ = {**request.environ, "HTTP_AUTHORIZATION": f"Bearer {operator_token}", "wsgi.input_terminated": True}
    stream = environ["wsgi.input"]
    status, _, _ = _call(ChunkedRequestBody(WSGIHandler()), environ)
    assert status.startswith("201")
    assert environ["wsgi.input"] is stream

"""Item 8 (API side): oversized or absurd requests get their documented 4xx with the
error envelope, never a 500, and nothing is sent or stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings

from mail.models import Message

pytestmark = pytest.mark.django_db


def _error(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    return body["error"]["code"]


def test_a_json_body_one_byte_over_the_limit_is_413(owner: Any) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    padding = "x" * (limit - len(json.dumps({"to": "a@example.com", "subject": "s", "body": ""})) + 1)
    body = json.dumps({"to": "a@example.com", "subject": "s", "body": padding})
    assert len(body.encode()) == limit + 1
    response = owner.client.post("/v1/send", body, content_type="application/json")
    assert response.status_code == 413
    assert _error(response) == "payload_too_large"
    assert not Message.objects.exists()


def test_a_json_body_at_the_limit_is_not_refused_for_its_size(owner: Any) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    padding = "x" * (limit - len(json.dumps({"add": [""], "remove": []})))
    body = json.dumps({"add": [padding], "remove": []})
    response = owner.client.patch(
        "/v1/messages/msg_00000000000000000000000000/labels", body, content_type="application/json"
    )
    assert response.status_code in (400, 404)  # judged on its content, not its size


@pytest.mark.parametrize(
    "query", ["limit=1000000", "limit=0", "limit=-1", "limit=abc", "q=" + "a" * 100_000, "q=%20%20", "cursor=@@@"]
)
def test_absurd_inbox_queries_are_400(owner: Any, query: str) -> None:
    response = owner.client.get(f"/v1/inbox?{query}")
    assert response.status_code == 400
    _error(response)


def test_1001_recipients_are_400_and_nothing_is_sent(owner: Any) -> None:
    recipients = [f"r{i}@example.com" for i in range(1001)]
    response = owner.client.post("/v1/send", {"to": recipients, "subject": "s", "body": "b"}, format="json")
    assert response.status_code == 400
    assert _error(response) == "too_many_recipients"
    assert not Message.objects.exists()


def test_a_header_with_a_newline_is_400_not_500(owner: Any) -> None:
    response = owner.client.post(
        "/v1/send", {"to": "a@example.com", "subject": "hi\r\nBcc: x@evil.example", "body": "b"}, format="json"
    )
    assert response.status_code == 400
    assert _error(response) == "header_injection"

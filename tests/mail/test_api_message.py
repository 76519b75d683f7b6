"""GET /v1/messages/{id} and /raw: guide section 3 and the 404 row of the failure table."""

from __future__ import annotations

from typing import Any

import pytest

from mail.models import Message
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code, receive
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def test_it_returns_the_item_and_the_raw_mime(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner, subject="Full message", body="the body")
    response = owner.client.get(f"/v1/messages/{message.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["MessageID"] == message.id and body["Subject"] == "Full message"
    assert isinstance(body["raw_mime"], str)
    assert "Subject: Full message" in body["raw_mime"] and "the body" in body["raw_mime"]


def test_it_decodes_invalid_utf8_with_replacement_and_serves_exact_bytes_at_raw(owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address, subject="latin").replace(b"Hi there", b"caf\xe9 \xff")
    accepted = deliver(raw, to=owner.address)
    message = Message.objects.get(delivery=accepted.delivery)
    assert "caf\ufffd" in owner.client.get(f"/v1/messages/{message.id}").json()["raw_mime"]
    response = owner.client.get(f"/v1/messages/{message.id}/raw")
    assert response.status_code == 200
    assert response["Content-Type"] == "message/rfc822"
    assert b"".join(response.streaming_content) == raw


def test_it_serves_raw_whatever_the_accept_header(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    response = owner.client.get(f"/v1/messages/{message.id}/raw", HTTP_ACCEPT="message/rfc822")
    assert response.status_code == 200


def test_it_fetches_outbound_messages_by_id(owner: Any) -> None:
    sent = MessageFactory(agent=owner.agent, direction=Message.Direction.OUTBOUND)
    response = owner.client.get(f"/v1/messages/{sent.id}")
    assert response.status_code == 200
    assert response.json()["Direction"] == "outbound" and response.json()["raw_mime"] == ""


def test_it_returns_404_for_an_unknown_id(owner: Any) -> None:
    for url in ("/v1/messages/msg_unknown", "/v1/messages/msg_unknown/raw"):
        response = owner.client.get(url)
        assert response.status_code == 404
        assert error_code(response) == "message_not_found"


def test_it_returns_404_for_raw_when_nothing_is_stored(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.get(f"/v1/messages/{message.id}/raw")
    assert response.status_code == 404
    assert error_code(response) == "raw_not_found"

"""POST /v1/messages/{id}/forward: the original travels as message/rfc822."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import pytest

from mail.models import Message
from mail.sending import message_forward
from mail.storage import raw_read
from tests.factories import MessageFactory
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def test_it_forwards_with_the_original_attached(owner: Any, teammate: Any, deliver: Any, post: Any) -> None:
    accepted = deliver(build_mail(to=owner.address, subject="Contract", body="Signed copy inside."), to=owner.address)
    original = Message.objects.get(delivery=accepted.delivery)

    response = post(owner, f"/v1/messages/{original.id}/forward", {"to": teammate.address, "body": "FYI"})

    assert response.status_code == 202, response.content
    forward = Message.objects.get(pk=response.json()["MessageID"])
    assert forward.subject == "Fwd: Contract"
    assert forward.thread_id == original.thread_id
    parsed = email.message_from_bytes(raw_read(forward.storage_key), policy=policy.default)
    [attached] = [part for part in parsed.walk() if part.get_content_type() == "message/rfc822"]
    inner = attached.get_payload(0)
    assert inner["Subject"] == "Contract"
    assert inner["Message-ID"] == original.internet_message_id
    received = Message.objects.get(agent=teammate.agent)
    assert received.subject == "Fwd: Contract"
    assert received.body_preview.startswith("FYI")


def test_it_quotes_the_original_when_its_raw_mime_is_not_stored(owner: Any, post: Any) -> None:
    original = MessageFactory(agent=owner.agent, subject="Old note", body_preview="the gist", storage_key="")

    response = post(owner, f"/v1/messages/{original.id}/forward", {"to": "bob@example.com"})

    forward = Message.objects.get(pk=response.json()["MessageID"])
    assert b"the gist" in raw_read(forward.storage_key)


def test_fwd_is_not_doubled(owner: Any, post: Any) -> None:
    original = MessageFactory(agent=owner.agent, subject="Fwd: Old note", storage_key="")

    forward_id = post(owner, f"/v1/messages/{original.id}/forward", {"to": "bob@example.com"}).json()["MessageID"]

    assert Message.objects.get(pk=forward_id).subject == "Fwd: Old note"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"to": "nobody"}, "invalid_address"),
        ({"to": "bob@example.com", "subject": "override"}, "unknown_field"),
    ],
)
def test_it_rejects_bad_input(owner: Any, post: Any, body: dict[str, Any], code: str) -> None:
    original = MessageFactory(agent=owner.agent, storage_key="")

    response = post(owner, f"/v1/messages/{original.id}/forward", body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_it_is_404_for_another_agents_message(owner: Any, stranger: Any, post: Any) -> None:
    original = MessageFactory(agent=owner.agent, storage_key="")

    response = post(stranger, f"/v1/messages/{original.id}/forward", {"to": "bob@example.com"})

    assert response.status_code == 404
    assert not Message.objects.outbound().exists()


def test_a_forward_is_idempotent(owner: Any, post: Any) -> None:
    original = MessageFactory(agent=owner.agent, storage_key="")
    url = f"/v1/messages/{original.id}/forward"

    first = post(owner, url, {"to": "bob@example.com"}, **{"Idempotency-Key": "f-1"})
    second = post(owner, url, {"to": "bob@example.com"}, **{"Idempotency-Key": "f-1"})

    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Message.objects.outbound().count() == 1


@pytest.mark.parametrize("subject", ["WG: Vertrag", "Fw: Contract", "FWD[2]: Contract"])
def test_a_forward_prefix_in_any_form_threading_knows_is_not_doubled(owner: Any, post: Any, subject: str) -> None:
    original = MessageFactory(agent=owner.agent, subject=subject, storage_key="")

    forward_id = post(owner, f"/v1/messages/{original.id}/forward", {"to": "bob@example.com"}).json()["MessageID"]

    assert Message.objects.get(pk=forward_id).subject == subject


def test_the_forward_service_takes_the_fields_as_keyword_arguments(owner: Any) -> None:
    original = MessageFactory(agent=owner.agent, subject="Contract", storage_key="")

    forward = message_forward(agent=owner.agent, original=original, to=["bob@example.com"], body="FYI")

    assert (forward.subject, forward.to) == ("Fwd: Contract", ["bob@example.com"])

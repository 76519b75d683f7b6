"""Every endpoint that takes a message id: another agent (same account or not) gets the
404 of an id that never existed, byte for byte, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from mail import storage
from mail.models import Message, MessageLabel
from tests.mail.inbox_helpers import receive

pytestmark = pytest.mark.django_db

CALLS = [
    ("get", "/v1/messages/{id}", None),
    ("get", "/v1/messages/{id}/raw", None),
    ("delete", "/v1/messages/{id}", None),
    ("patch", "/v1/messages/{id}/labels", {"add": ["stolen"]}),
    ("patch", "/v1/messages/{id}/read", {"is_read": True}),
    ("patch", "/v1/messages/{id}/archive", {"archived": True}),
]


def call(persona: Any, method: str, url: str, body: Any) -> Any:
    return (
        getattr(persona.client, method)(url, body, format="json")
        if body is not None
        else getattr(persona.client, method)(url)
    )


@pytest.mark.parametrize(("method", "template", "body"), CALLS)
@pytest.mark.parametrize("intruder", ["teammate", "stranger"])
def test_it_answers_another_agents_message_like_an_unknown_id(
    owner: Any, teammate: Any, stranger: Any, deliver: Any, method: str, template: str, body: Any, intruder: str
) -> None:
    persona = {"teammate": teammate, "stranger": stranger}[intruder]
    message = receive(deliver, owner)
    foreign = call(persona, method, template.format(id=message.id), body)
    # An unknown id of the same shape, so even the message text cannot differ.
    unknown = call(persona, method, template.format(id="msg_" + "0" * 26), body)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content
    assert foreign["Content-Type"] == unknown["Content-Type"]
    message.refresh_from_db()
    assert not message.is_read and not message.archived
    assert not MessageLabel.objects.filter(message=message).exists()
    assert storage.raw_exists(message.storage_key)
    assert Message.objects.filter(pk=message.id).exists()

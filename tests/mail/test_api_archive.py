"""PATCH /v1/messages/{id}/archive: guide section 9 and the 409 row of the failure table."""

from __future__ import annotations

from typing import Any

import pytest

from mail import storage
from mail.models import Message
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code, ids, receive
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def archive(persona: Any, message_id: str, archived: Any) -> Any:
    return persona.client.patch(f"/v1/messages/{message_id}/archive", {"archived": archived}, format="json")


def test_it_archives_hides_from_the_inbox_and_still_serves_the_message(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner, subject="Keep me")
    response = archive(owner, message.id, True)
    assert response.status_code == 200 and response.json()["Archived"] is True
    assert ids(owner.client.get("/v1/inbox")) == []
    assert ids(owner.client.get("/v1/inbox?include_archived=true")) == [message.id]
    detail = owner.client.get(f"/v1/messages/{message.id}")
    assert detail.status_code == 200 and "Subject: Keep me" in detail.json()["raw_mime"]


def test_it_moves_the_raw_mime_to_the_archive_storage_and_back(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    raw = storage.raw_read(message.storage_key)
    archive(owner, message.id, True)
    assert storage.raw_exists(message.storage_key, archived=True)
    assert not storage.raw_exists(message.storage_key, archived=False)
    assert b"".join(owner.client.get(f"/v1/messages/{message.id}/raw").streaming_content) == raw
    response = archive(owner, message.id, False)
    assert response.status_code == 200 and response.json()["Archived"] is False
    assert storage.raw_exists(message.storage_key) and not storage.raw_exists(message.storage_key, archived=True)
    assert ids(owner.client.get("/v1/inbox")) == [message.id]


def test_it_returns_409_already_archived_when_archiving_twice(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    assert archive(owner, message.id, True).status_code == 200
    response = archive(owner, message.id, True)
    assert response.status_code == 409
    assert error_code(response) == "already_archived"
    assert storage.raw_exists(message.storage_key, archived=True)


def test_restoring_a_message_that_is_not_archived_is_a_no_op(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = archive(owner, message.id, False)
    assert response.status_code == 200 and response.json()["Archived"] is False


def test_it_keeps_a_shared_object_for_the_unarchived_copy(owner: Any, teammate: Any, deliver: Any) -> None:
    raw = build_mail(to=[owner.address, teammate.address])
    accepted = deliver(raw, to=[owner.address, teammate.address])
    mine = Message.objects.get(delivery=accepted.delivery, agent=owner.agent)
    theirs = Message.objects.get(delivery=accepted.delivery, agent=teammate.agent)
    assert archive(owner, mine.id, True).status_code == 200
    # Both storages hold it: the teammate's copy is still in the mail storage.
    assert storage.raw_exists(mine.storage_key) and storage.raw_exists(mine.storage_key, archived=True)
    assert archive(teammate, theirs.id, True).status_code == 200
    assert not storage.raw_exists(mine.storage_key)
    for persona, message in ((owner, mine), (teammate, theirs)):
        assert b"".join(persona.client.get(f"/v1/messages/{message.id}/raw").streaming_content) == raw
    assert archive(owner, mine.id, False).status_code == 200
    assert storage.raw_exists(mine.storage_key) and storage.raw_exists(mine.storage_key, archived=True)
    assert b"".join(teammate.client.get(f"/v1/messages/{theirs.id}/raw").streaming_content) == raw


def test_it_still_serves_a_message_whose_object_moved_but_whose_flag_did_not(owner: Any, deliver: Any) -> None:
    # The move happens inside the archive transaction; if that transaction then fails to
    # commit, the row says "not archived" while the object sits in the archive storage.
    message = receive(deliver, owner, subject="Moved")
    raw = storage.raw_read(message.storage_key)
    storage.raw_move(message.storage_key, to_archive=True)
    assert not storage.raw_exists(message.storage_key)
    assert b"".join(owner.client.get(f"/v1/messages/{message.id}/raw").streaming_content) == raw
    assert "Subject: Moved" in owner.client.get(f"/v1/messages/{message.id}").json()["raw_mime"]


@pytest.mark.parametrize("value", ["true", 1, None])
def test_it_accepts_only_a_json_boolean(owner: Any, value: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = archive(owner, message.id, value)
    assert response.status_code == 400 and error_code(response) == "validation_error"


def test_it_returns_404_for_an_unknown_message(owner: Any) -> None:
    response = archive(owner, "msg_nope", True)
    assert response.status_code == 404 and error_code(response) == "message_not_found"

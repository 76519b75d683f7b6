"""DELETE /v1/messages/{id}: guide section 4 ("404 ... Message was deleted")."""

from __future__ import annotations

from typing import Any

import pytest

from mail import storage
from mail.models import Message
from tests.mail.inbox_helpers import error_code, receive
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Any:
    """The raw object is deleted on commit; run those callbacks as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_it_deletes_the_row_and_the_raw_object_then_404s(owner: Any, deliver: Any, committed: Any) -> None:
    message = receive(deliver, owner)
    assert storage.raw_exists(message.storage_key)
    with committed():
        response = owner.client.delete(f"/v1/messages/{message.id}")
    assert response.status_code == 204 and response.content == b""
    assert not Message.objects.filter(pk=message.id).exists()
    assert not storage.raw_exists(message.storage_key)
    again = owner.client.get(f"/v1/messages/{message.id}")
    assert again.status_code == 404 and error_code(again) == "message_not_found"
    assert owner.client.delete(f"/v1/messages/{message.id}").status_code == 404


def test_it_keeps_the_raw_object_while_another_agents_copy_uses_it(
    owner: Any, teammate: Any, deliver: Any, committed: Any
) -> None:
    raw = build_mail(to=[owner.address, teammate.address])
    accepted = deliver(raw, to=[owner.address, teammate.address])
    mine = Message.objects.get(delivery=accepted.delivery, agent=owner.agent)
    theirs = Message.objects.get(delivery=accepted.delivery, agent=teammate.agent)
    assert mine.storage_key == theirs.storage_key
    with committed():
        assert owner.client.delete(f"/v1/messages/{mine.id}").status_code == 204
    assert storage.raw_exists(theirs.storage_key)
    response = teammate.client.get(f"/v1/messages/{theirs.id}/raw")
    assert b"".join(response.streaming_content) == raw
    with committed():
        assert teammate.client.delete(f"/v1/messages/{theirs.id}").status_code == 204
    assert not storage.raw_exists(theirs.storage_key)


def test_it_deletes_an_archived_message_and_its_archived_object(owner: Any, deliver: Any, committed: Any) -> None:
    message = receive(deliver, owner)
    assert (
        owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": True}, format="json").status_code == 200
    )
    with committed():
        assert owner.client.delete(f"/v1/messages/{message.id}").status_code == 204
    assert not storage.raw_exists(message.storage_key, archived=True)
    assert not storage.raw_exists(message.storage_key)


def test_deleting_the_archived_copy_drops_the_archive_copy_the_other_no_longer_needs(
    owner: Any, teammate: Any, deliver: Any, committed: Any
) -> None:
    raw = build_mail(to=[owner.address, teammate.address])
    accepted = deliver(raw, to=[owner.address, teammate.address])
    mine = Message.objects.get(delivery=accepted.delivery, agent=owner.agent)
    theirs = Message.objects.get(delivery=accepted.delivery, agent=teammate.agent)
    owner.client.patch(f"/v1/messages/{mine.id}/archive", {"archived": True}, format="json")
    assert storage.raw_exists(mine.storage_key, archived=True) and storage.raw_exists(mine.storage_key)
    with committed():
        assert owner.client.delete(f"/v1/messages/{mine.id}").status_code == 204
    assert not storage.raw_exists(mine.storage_key, archived=True)
    assert b"".join(teammate.client.get(f"/v1/messages/{theirs.id}/raw").streaming_content) == raw


def _part_exists(message: Message) -> bool:
    (key,) = message.attachments.values_list("storage_key", flat=True)
    return storage.mail_storage().exists(key)


def test_deleting_a_message_deletes_its_attachment_objects(owner: Any, deliver: Any, committed: Any) -> None:
    message = receive(deliver, owner, attachments=[("plan.pdf", "application/pdf", b"%PDF only mine")])
    (key,) = message.attachments.values_list("storage_key", flat=True)
    assert key.startswith("parts/") and storage.mail_storage().exists(key)

    with committed():
        assert owner.client.delete(f"/v1/messages/{message.id}").status_code == 204

    assert not storage.mail_storage().exists(key)


def test_an_attachment_object_shared_with_another_message_stays_until_the_last_goes(
    owner: Any, teammate: Any, deliver: Any, committed: Any
) -> None:
    same = [("report.csv", "text/csv", b"a,b\n1,2\n")]
    mine = receive(deliver, owner, subject="first", attachments=same)
    theirs = receive(deliver, teammate, subject="second", attachments=same)
    assert mine.storage_key != theirs.storage_key  # two mails, one part object
    (key,) = set(Message.objects.filter(pk__in=[mine.pk, theirs.pk]).values_list("attachments__storage_key", flat=True))

    with committed():
        assert owner.client.delete(f"/v1/messages/{mine.id}").status_code == 204
    assert _part_exists(theirs)
    download = teammate.client.get(f"/v1/messages/{theirs.id}/attachments/{theirs.attachments.get().id}")
    assert b"".join(download.streaming_content) == b"a,b\n1,2\n"

    with committed():
        assert teammate.client.delete(f"/v1/messages/{theirs.id}").status_code == 204
    assert not storage.mail_storage().exists(key)


def test_a_part_object_pruned_under_a_message_is_extracted_from_its_raw_mime(owner: Any, deliver: Any) -> None:
    """A delete that raced with the ingest of the same bytes may remove a part another
    message is about to reference: its download still works, from the raw MIME."""
    message = receive(deliver, owner, attachments=[("notes.txt", "text/plain", b"still here")])
    attachment = message.attachments.get()
    storage.mail_storage().delete(attachment.storage_key)

    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"still here"

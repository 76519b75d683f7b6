"""The attachment services: what sending relies on, the expiry sweep, filename hygiene
and the extraction of parts from stored mail."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import override_settings
from django.utils import timezone

from assmbl.errors import ApiError
from mail.attachments import (
    attachment_create,
    attachment_open,
    attachment_upload_receive,
    attachments_expire,
    attachments_for_send,
    attachments_mark_claimed,
)
from mail.models import Attachment, Message
from mail.parsing import sanitize_filename
from mail.storage import mail_storage
from mail.tasks import sweep_expired_attachments
from tests.factories import MessageFactory
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def uploaded(agent: Any, data: bytes = b"hello", content_type: str = "text/plain") -> Attachment:
    ticket = attachment_create(agent=agent, filename="hello.txt", content_type=content_type, size=len(data))
    query = dict(pair.split("=", 1) for pair in urlsplit(ticket.url).query.split("&"))
    import io

    return attachment_upload_receive(
        attachment_id=ticket.attachment.id,
        expires=query["expires"],
        signature=query["signature"],
        stream=io.BytesIO(data),
        content_length=len(data),
        content_type=content_type,
    )


def error_of(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_it_returns_uploads_in_the_order_asked(owner: Any) -> None:
    first, second = uploaded(owner.agent, b"one"), uploaded(owner.agent, b"two")
    got = attachments_for_send(agent=owner.agent, attachment_ids=[second.id, first.id, second.id])
    assert [a.id for a in got] == [second.id, first.id]
    with attachment_open(got[0]) as fh:
        assert fh.read() == b"two"


def test_it_treats_another_agents_upload_like_an_unknown_id(owner: Any, stranger: Any) -> None:
    theirs = uploaded(owner.agent)
    stolen = error_of(lambda: attachments_for_send(agent=stranger.agent, attachment_ids=[theirs.id]))
    unknown = error_of(lambda: attachments_for_send(agent=stranger.agent, attachment_ids=["att_unknown"]))
    assert (stolen.status_code, stolen.code) == (unknown.status_code, unknown.code) == (400, "attachment_not_uploaded")
    assert stolen.details["state"] is None


def test_it_refuses_a_never_uploaded_or_expired_upload(owner: Any) -> None:
    pending = attachment_create(agent=owner.agent, filename="a.txt", content_type="text/plain", size=3).attachment
    assert error_of(lambda: attachments_for_send(agent=owner.agent, attachment_ids=[pending.id])).code == (
        "attachment_not_uploaded"
    )
    stale = uploaded(owner.agent)
    Attachment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    error = error_of(lambda: attachments_for_send(agent=owner.agent, attachment_ids=[stale.id]))
    assert (error.code, error.details["state"]) == ("attachment_not_uploaded", "expired")


def test_it_refuses_an_upload_whose_bytes_changed_in_storage(owner: Any) -> None:
    att = uploaded(owner.agent, b"hello")
    storage = mail_storage()
    storage.delete(att.storage_key)
    from django.core.files.base import ContentFile

    storage.save(att.storage_key, ContentFile(b"hello, world"))
    assert (
        error_of(lambda: attachments_for_send(agent=owner.agent, attachment_ids=[att.id])).code == "attachment_mismatch"
    )


@override_settings(MAX_ATTACHMENTS_PER_MESSAGE=2)
def test_it_limits_the_number_of_attachments(owner: Any) -> None:
    ids = [uploaded(owner.agent).id for _ in range(3)]
    assert error_of(lambda: attachments_for_send(agent=owner.agent, attachment_ids=ids)).code == "too_many_attachments"


@override_settings(MAX_MESSAGE_ATTACHMENT_BYTES=9)
def test_it_limits_the_total_size_of_a_message(owner: Any) -> None:
    ids = [uploaded(owner.agent, b"12345").id, uploaded(owner.agent, b"67890").id]
    error = error_of(lambda: attachments_for_send(agent=owner.agent, attachment_ids=ids))
    assert (error.status_code, error.code) == (413, "attachments_too_large")


def test_it_claims_an_upload_once(owner: Any) -> None:
    att = uploaded(owner.agent)
    first = MessageFactory(agent=owner.agent, direction=Message.Direction.OUTBOUND)
    attachments_mark_claimed(attachments=[att], message=first)
    att.refresh_from_db()
    assert (att.state, att.message_id, att.expires_at) == ("claimed", first.id, None)
    second = MessageFactory(agent=owner.agent, direction=Message.Direction.OUTBOUND)
    stale_copy = Attachment.objects.get(pk=att.pk)
    stale_copy.state = Attachment.State.UPLOADED
    assert (
        error_of(lambda: attachments_mark_claimed(attachments=[stale_copy], message=second)).code
        == "attachment_claimed"
    )
    assert error_of(lambda: attachments_for_send(agent=owner.agent, attachment_ids=[att.id])).code == (
        "attachment_not_uploaded"
    )


def test_the_sweep_deletes_unclaimed_uploads_past_their_expiry(owner: Any) -> None:
    stale, fresh, sent = uploaded(owner.agent), uploaded(owner.agent), uploaded(owner.agent)
    never = attachment_create(agent=owner.agent, filename="a.txt", content_type="text/plain", size=3).attachment
    attachments_mark_claimed(attachments=[sent], message=MessageFactory(agent=owner.agent))
    past = timezone.now() - dt.timedelta(minutes=1)
    Attachment.objects.filter(pk__in=[stale.pk, never.pk]).update(expires_at=past)
    Attachment.objects.filter(pk=sent.pk).update(expires_at=past)  # claimed: must survive anyway

    assert sweep_expired_attachments.delay().get() == 2
    states = dict(Attachment.objects.values_list("pk", "state"))
    assert (states[stale.pk], states[never.pk], states[fresh.pk], states[sent.pk]) == (
        "expired",
        "expired",
        "uploaded",
        "claimed",
    )
    storage = mail_storage()
    assert not storage.exists(stale.storage_key)
    assert storage.exists(fresh.storage_key) and storage.exists(sent.storage_key)
    assert attachments_expire() == 0


@pytest.mark.parametrize(
    ("hostile", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("evil\x00\x07\x1b[31m.txt", "evil[31m.txt"),
        ("line\r\nbreak.txt", "line break.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        (".htaccess", "htaccess"),
        ('a<b>:"c"|?*.txt', "a_b___c____.txt"),
        ("..", ""),
        ("x" * 500 + ".pdf", "x" * 146 + ".pdf"),
    ],
)
def test_it_sanitises_hostile_filenames(hostile: str, safe: str) -> None:
    assert sanitize_filename(hostile) == safe


def test_it_sanitises_filenames_at_ingest(owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address, attachments=[("../../" + "a" * 400 + ".csv", "text/csv", b"1,2")])
    deliver(raw, to=owner.address)
    att = Message.objects.for_agent(owner.agent).get().attachments.get()
    assert att.filename == "a" * 146 + ".csv"


def test_it_stores_each_part_once_for_every_recipient(owner: Any, teammate: Any, deliver: Any) -> None:
    deliver(
        build_mail(to=[owner.address, teammate.address], attachments=[("p.bin", "application/zip", b"PK\3\4")]),
        to=[owner.address, teammate.address],
    )
    keys = set(Attachment.objects.filter(kind="inbound").values_list("storage_key", flat=True))
    assert len(keys) == 1 and mail_storage().exists(keys.pop())


def test_it_extracts_a_part_from_the_raw_mime_when_it_was_not_stored(owner: Any, deliver: Any) -> None:
    deliver(
        build_mail(
            to=owner.address, attachments=[("a.txt", "text/plain", b"first"), ("b.png", "image/png", b"\x89PNG")]
        ),
        to=owner.address,
    )
    message = Message.objects.for_agent(owner.agent).get()
    Attachment.objects.filter(message=message).update(storage_key="")
    for att, expected in zip(message.attachments.order_by("part_index"), [b"first", b"\x89PNG"], strict=True):
        response = owner.client.get(f"/v1/messages/{message.id}/attachments/{att.id}")
        assert b"".join(response.streaming_content) == expected


def test_a_part_cut_short_on_disk_is_never_served_and_is_written_again(owner: Any, deliver: Any) -> None:
    """What a crash while a part was written leaves (parts are not synced): a short file
    under the part's name. Downloads come from the raw MIME instead, and the next mail
    carrying the same bytes writes the part whole."""
    data = bytes(range(256)) * 40
    deliver(
        build_mail(to=owner.address, subject="one", attachments=[("d.bin", "application/zip", data)]), to=owner.address
    )
    attachment = Attachment.objects.get(kind="inbound")
    path = mail_storage().path(attachment.storage_key)
    with open(path, "r+b") as fh:
        fh.truncate(1000)

    response = owner.client.get(f"/v1/messages/{attachment.message_id}/attachments/{attachment.id}")
    assert b"".join(response.streaming_content) == data
    assert response["Content-Length"] == str(len(data))

    deliver(
        build_mail(to=owner.address, subject="two", attachments=[("d.bin", "application/zip", data)]), to=owner.address
    )
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.endswith(".tmp")]


def test_beat_schedules_the_sweep_by_a_registered_task_name() -> None:
    from django.conf import settings

    from assmbl.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["sweep-expired-attachments"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks

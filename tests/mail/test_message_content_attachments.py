"""Attachments as text, converted in the content worker under a time limit
(mail.message_content, the ``convert_attachment_text`` task): read ahead after ingest,
waited for by a read, recorded when they fail, never a 500, kept per account."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from celery.exceptions import TimeLimitExceeded
from django.test import Client
from django.utils import timezone

from mail.message_content import MAX_ATTEMPTS, attachment_texts_prune
from mail.models import Attachment, AttachmentText, Message
from mail.tasks import convert_attachment_text
from tests.mail.inbox_helpers import error_code
from tests.mail.test_content_attachments import pdf_bytes
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def _with_attachment(deliver: Any, persona: Any, filename: str, ctype: str, data: bytes) -> tuple[Message, Attachment]:
    raw = build_mail(to=persona.address, subject="With a file", attachments=[(filename, ctype, data)])
    accepted = deliver(raw, to=persona.address)
    message = Message.objects.get(delivery=accepted.delivery, agent=persona.agent)
    return message, message.attachments.get()


def _big_csv() -> bytes:
    # 40,000 rows of 6 cells: markitdown's CSV converter needs well over 50 ms for it.
    return b"".join(b"%d,alpha,beta,gamma,%d,delta\n" % (i, i * 7) for i in range(40_000))


def test_attachments_are_converted_after_ingest_before_any_read(owner: Any, deliver: Any) -> None:
    _, attachment = _with_attachment(deliver, owner, "invoice.pdf", "application/pdf", pdf_bytes("Invoice 4711"))
    row = AttachmentText.objects.get(sha256=attachment.sha256)
    assert row.status == AttachmentText.Status.DONE and "Invoice 4711" in row.text
    assert row.account_id == owner.agent.account_id


def test_a_conversion_past_the_time_limit_is_recorded_and_answered_415(owner: Any, deliver: Any, settings: Any) -> None:
    settings.ATTACHMENT_TEXT_TIME_LIMIT = 0.05
    message, attachment = _with_attachment(deliver, owner, "big.csv", "text/csv", _big_csv())
    row = AttachmentText.objects.get(sha256=attachment.sha256)
    assert row.status == AttachmentText.Status.TIME_LIMIT and "0.05" in row.error

    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 415 and error_code(response) == "unsupported_attachment_type"
    assert response.json()["error"]["details"] == {"reason": "time_limit"}


def test_a_file_the_converter_cannot_read_is_recorded_as_unreadable(owner: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "broken.pdf", "application/pdf", b"%PDF-1.4 not really")
    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 415 and response.json()["error"]["details"] == {"reason": "unreadable"}
    assert AttachmentText.objects.get(sha256=attachment.sha256).error


def test_a_read_while_the_conversion_is_under_way_answers_503_with_retry_after(
    owner: Any, deliver: Any, settings: Any
) -> None:
    message, attachment = _with_attachment(deliver, owner, "notes.txt", "text/plain", b"meeting notes")
    # What a conversion that a worker has not finished yet looks like.
    AttachmentText.objects.filter(sha256=attachment.sha256).update(status=AttachmentText.Status.PENDING, text="")
    settings.ATTACHMENT_TEXT_WAIT_SECONDS = 0.3

    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 503 and error_code(response) == "attachment_text_pending"
    assert response["Retry-After"] == "2"


def test_a_lost_conversion_is_queued_again_by_the_next_read(owner: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "notes.txt", "text/plain", b"meeting notes")
    AttachmentText.objects.filter(sha256=attachment.sha256).update(status=AttachmentText.Status.PENDING, text="")
    AttachmentText.objects.filter(sha256=attachment.sha256).update(updated_at=timezone.now() - dt.timedelta(hours=1))

    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 200 and response.json()["Text"] == "meeting notes"
    assert AttachmentText.objects.get(sha256=attachment.sha256).attempts == 2


def test_a_conversion_lost_every_time_is_failed_not_pending_for_ever(owner: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "notes.txt", "text/plain", b"meeting notes")
    AttachmentText.objects.filter(sha256=attachment.sha256).update(
        status=AttachmentText.Status.PENDING, text="", attempts=MAX_ATTEMPTS
    )
    AttachmentText.objects.filter(sha256=attachment.sha256).update(updated_at=timezone.now() - dt.timedelta(hours=1))

    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 415 and response.json()["error"]["details"] == {"reason": "failed"}


def test_the_hard_time_limit_records_the_conversion_it_stopped(owner: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "notes.txt", "text/plain", b"meeting notes")
    AttachmentText.objects.filter(sha256=attachment.sha256).update(status=AttachmentText.Status.PENDING, text="")
    # What Celery's worker calls when it killed the child process at the hard limit.
    convert_attachment_text.on_failure(TimeLimitExceeded(40), "task-id", (attachment.id,), {}, None)

    row = AttachmentText.objects.get(sha256=attachment.sha256)
    assert row.status == AttachmentText.Status.TIME_LIMIT and "hard time limit" in row.error
    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 415 and response.json()["error"]["details"] == {"reason": "time_limit"}


def test_the_same_file_in_two_accounts_is_converted_for_each(owner: Any, stranger: Any, deliver: Any) -> None:
    data = pdf_bytes("Shared handout")
    _, mine = _with_attachment(deliver, owner, "handout.pdf", "application/pdf", data)
    _, theirs = _with_attachment(deliver, stranger, "handout.pdf", "application/pdf", data)
    assert mine.sha256 == theirs.sha256
    rows = AttachmentText.objects.filter(sha256=mine.sha256)
    assert sorted(rows.values_list("account_id", flat=True)) == sorted(
        [owner.agent.account_id, stranger.agent.account_id]
    )
    assert attachment_texts_prune(account_id=owner.agent.account_id, sha256s=[mine.sha256]) == 0


def test_staff_see_a_failed_conversion_in_the_admin(
    owner: Any, deliver: Any, settings: Any, admin_client: Client
) -> None:
    settings.ATTACHMENT_TEXT_TIME_LIMIT = 0.05
    _, attachment = _with_attachment(deliver, owner, "big.csv", "text/csv", _big_csv())
    page = admin_client.get("/admin/mail/attachmenttext/?status=time_limit").content.decode()
    assert attachment.sha256 in page and "ran longer than 0.05 s" in page

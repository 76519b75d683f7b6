"""Retention (mail.archival) and deletes forget what was computed from the mail they remove:
its attachments' texts (unless other unarchived mail of the account has the same file)
and, on archive, its content rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from mail.archival import archive_job_start
from mail.models import ArchiveJob, AttachmentText, Message
from mail.models import MessageContent as MessageContentRow
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def _with_file(deliver: Any, persona: Any, data: bytes, *, days_old: int = 0) -> Message:
    raw = build_mail(to=persona.address, subject="Notes", attachments=[("notes.txt", "text/plain", data)])
    message = Message.objects.get(delivery=deliver(raw, to=persona.address).delivery, agent=persona.agent)
    attachment = message.attachments.get()
    text = persona.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert text.status_code == 200 and text.json()["Text"] == data.decode()
    if days_old:
        Message.objects.filter(pk=message.pk).update(received_at=timezone.now() - dt.timedelta(days=days_old))
    return message


def _run(action: str, django_capture_on_commit_callbacks: Any, owner: Any) -> ArchiveJob:
    with django_capture_on_commit_callbacks(execute=True):
        job = archive_job_start(action=action, agent=owner.agent, older_than_days=30)
    job.refresh_from_db()
    assert job.state == ArchiveJob.State.DONE, job.error
    return job


def test_deleting_a_message_forgets_its_attachments_text(
    owner: Any, deliver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    message = _with_file(deliver, owner, b"the secret plan")
    assert AttachmentText.objects.filter(text="the secret plan").exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.client.delete(f"/v1/messages/{message.id}").status_code == 204
    assert not AttachmentText.objects.exists()


def test_a_text_stays_while_other_mail_of_the_account_has_the_same_file(
    owner: Any, teammate: Any, deliver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = _with_file(deliver, owner, b"shared agenda")
    _with_file(deliver, teammate, b"shared agenda")
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.client.delete(f"/v1/messages/{first.id}").status_code == 204
    assert AttachmentText.objects.filter(text="shared agenda").count() == 1


def test_retention_archive_forgets_texts_and_content_of_the_mail_it_archives(
    owner: Any, deliver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    old = _with_file(deliver, owner, b"old minutes", days_old=60)
    recent = _with_file(deliver, owner, b"new minutes")
    assert MessageContentRow.objects.filter(message=old).exists()

    _run(ArchiveJob.Action.ARCHIVE, django_capture_on_commit_callbacks, owner)

    assert list(AttachmentText.objects.values_list("text", flat=True)) == ["new minutes"]
    assert not MessageContentRow.objects.filter(message=old).exists()
    assert MessageContentRow.objects.filter(message=recent).exists()
    # Still readable: computed again from the archived MIME.
    body = owner.client.get(f"/v1/messages/{old.id}").json()
    assert body["ExtractedText"]


def test_retention_purge_forgets_the_texts_of_the_mail_it_deletes(
    owner: Any, deliver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    old = _with_file(deliver, owner, b"old minutes", days_old=60)
    Message.objects.filter(pk=old.pk).update(archived=True)
    # Read while archived: converted again and kept.
    attachment = old.attachments.get()
    assert owner.client.get(f"/v1/messages/{old.id}/attachments/{attachment.id}/text").status_code == 200
    assert AttachmentText.objects.filter(text="old minutes").exists()

    _run(ArchiveJob.Action.PURGE, django_capture_on_commit_callbacks, owner)

    assert not Message.objects.filter(pk=old.pk).exists()
    assert not AttachmentText.objects.exists()

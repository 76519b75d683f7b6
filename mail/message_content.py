"""The one content service of a stored message: what ``mail.content`` reads in it (Text,
Html, ExtractedText, Codes, Links, Safety, PromptText, BodyPreview), computed once and kept
in a ``MessageContent`` row, and attachments as text, kept in ``AttachmentText``.

The row is computed after the message commits, by the ``extract_content`` task on the
``content`` queue (extraction costs 3 ms for a small mail and up to ~140 ms for a large
HTML newsletter, more than ingest's whole budget per mail). A read that finds no row, or a
row of an older extractor, computes it inline and stores it: correctness never depends on
the task having run.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from assmbl.celery import task_queue
from directory.models import Sender, SenderRule
from mail.attachments import attachment_open
from mail.content import (
    AttachmentTooLarge,
    MessageContent,
    UnsupportedAttachmentType,
    attachment_text,
    content_extract,
)
from mail.content.attachments import attachment_kind
from mail.models import Attachment, AttachmentText, Message
from mail.models import MessageContent as MessageContentRow
from mail.storage import raw_read
from mail.threads import threads_refresh

log = logging.getLogger(__name__)

# Bump when mail.content's output changes: rows of an older version are recomputed on read.
CONTENT_VERSION = 1
# Caps of the message.received payload: a webhook receiver is not a reader of whole mails.
EVENT_TEXT_MAX_CHARS = 4_000

_TEXT_FIELDS = ("text", "html", "extracted_text", "prompt_text", "body_preview")


def _trusted_domains(message: Message) -> list[str]:
    """Domains the agent trusts: of its trusted or verified senders and of its (and its
    account's) allow rules. A From domain that resembles one of them is ``lookalike_sender``."""
    addresses = Sender.objects.filter(
        agent_id=message.agent_id, status__in=[Sender.Status.TRUSTED, Sender.Status.VERIFIED]
    ).values_list("address", flat=True)[:500]
    patterns = SenderRule.objects.filter(
        action=SenderRule.Action.ALLOW, account_id=message.agent.account_id, agent_id__in=[message.agent_id, None]
    ).values_list("pattern", flat=True)[:500]
    domains = {value.rpartition("@")[2].lower() for value in [*addresses, *patterns] if value}
    return sorted(d for d in domains if d)


def _to_row(content: MessageContent) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(content, name) for name in _TEXT_FIELDS}
    data.update(
        codes=list(content.codes),
        links=[dict(link) for link in content.links],
        hidden_text=content.hidden_text,
        flags=list(content.flags),
        instruction_rules=list(content.instruction_rules),
    )
    return data


def _from_row(data: dict[str, Any]) -> MessageContent:
    texts: dict[str, Any] = {name: data.get(name) or ("" if name != "html" else None) for name in _TEXT_FIELDS}
    return MessageContent(
        **texts,
        codes=tuple(data.get("codes") or ()),
        links=tuple(data.get("links") or ()),
        hidden_text=bool(data.get("hidden_text")),
        flags=tuple(data.get("flags") or ()),
        instruction_rules=tuple(data.get("instruction_rules") or ()),
    )


def message_content_compute(*, message: Message) -> MessageContent:
    """The content of ``message`` from its raw MIME, not stored (a message without its raw
    MIME, or whose object is gone, reads as an empty body)."""
    raw = b""
    if message.storage_key:
        try:
            raw = raw_read(message.storage_key, archived=message.archived)
        except FileNotFoundError:
            log.warning("message %s: raw MIME %s missing; its content reads as empty", message.pk, message.storage_key)
    return content_extract(
        raw=raw,
        subject=message.subject,
        from_header=message.from_header,
        sender_verified=message.sender_verified,
        received_at=message.received_at,
        attachments=list(message.attachments.all()),
        trusted_domains=_trusted_domains(message),
    )


def message_content_get(*, message: Message) -> MessageContent:
    """The content of ``message``: its stored row, or computed now and stored. Computing it
    also sets the message's BodyPreview from ExtractedText (ingest's own preview is a quick
    one of the first text part, before quotes and hidden text were removed)."""
    row = MessageContentRow.objects.filter(message_id=message.pk).first()
    if row is not None and row.version == CONTENT_VERSION:
        return _from_row(row.data)
    content = message_content_compute(message=message)
    data = _to_row(content)
    try:
        with transaction.atomic():
            MessageContentRow.objects.update_or_create(
                message_id=message.pk, defaults={"version": CONTENT_VERSION, "data": data}
            )
    except IntegrityError:
        # Deleted meanwhile (the row's message is gone), or a concurrent first read stored
        # the same row first: the content is still the right answer.
        return content
    if message.body_preview != content.body_preview:
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).update(body_preview=content.body_preview)
            # The thread's LastMessagePreview, when this is its last message.
            threads_refresh(keys=[(message.agent_id, message.thread_id)])
        message.body_preview = content.body_preview
    return content


def message_contents_extract(*, message_ids: list[str]) -> int:
    """Compute and store the content of each message that has no current row (the task's
    service; idempotent). Returns how many were computed."""
    have = set(
        MessageContentRow.objects.filter(message_id__in=message_ids, version=CONTENT_VERSION).values_list(
            "message_id", flat=True
        )
    )
    todo = Message.objects.filter(pk__in=[i for i in message_ids if i not in have]).select_related("agent")
    count = 0
    for message in todo:
        message_content_get(message=message)
        count += 1
    return count


def message_contents_queue(message_ids: list[str]) -> None:
    """After the caller's transaction commits, compute these messages' content on the
    ``content`` queue. robust: a broker hiccup must not fail the commit's caller; the
    first read computes what the task did not."""
    if message_ids:
        ids = list(message_ids)
        transaction.on_commit(lambda: task_queue("mail.tasks.extract_content", ids), robust=True)


def message_content_event_fields(content: MessageContent) -> dict[str, Any]:
    """What a message.received payload carries of the content: ExtractedText (capped) and Codes."""
    return {"ExtractedText": content.extracted_text[:EVENT_TEXT_MAX_CHARS], "Codes": list(content.codes)}


def _attachment_bytes(attachment: Attachment, *, max_bytes: int) -> bytes:
    with attachment_open(attachment) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AttachmentTooLarge(f"The attachment is larger than {max_bytes} bytes.")
    return data


def attachment_text_get(*, attachment: Attachment) -> tuple[str, bool]:
    """The attachment as text and whether it was cut, converted once per distinct content:
    the result is kept under the bytes' SHA-256 (an attachment sent again, or read again,
    is not converted again). Raises ``UnsupportedAttachmentType`` or ``AttachmentTooLarge``."""
    max_bytes = settings.ATTACHMENT_TEXT_MAX_BYTES
    kind = attachment_kind(content_type=attachment.content_type, filename=attachment.filename)
    if kind is not None and attachment.size > max_bytes:  # before reading a byte of it
        raise AttachmentTooLarge(f"The attachment is larger than {max_bytes} bytes.")
    if kind is None:
        raise UnsupportedAttachmentType(f"No text can be taken from {attachment.content_type or 'this type'}.")
    data = _attachment_bytes(attachment, max_bytes=max_bytes)
    key = f"v{CONTENT_VERSION}:{kind}:{hashlib.sha256(data).hexdigest()}"
    cached = AttachmentText.objects.filter(pk=key).first()
    if cached is not None:
        return cached.text, cached.truncated
    text, truncated = attachment_text(
        data=data, content_type=attachment.content_type, filename=attachment.filename, max_bytes=max_bytes
    )
    try:
        with transaction.atomic():
            AttachmentText.objects.get_or_create(pk=key, defaults={"text": text, "truncated": truncated})
    except IntegrityError:
        pass
    return text, truncated

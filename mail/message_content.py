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

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from assmbl import domain
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
from mail.content.limits import TimeLimitExceeded, time_limit
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


def message_content_compute(*, message: Message, trusted_domains: list[str] | None = None) -> MessageContent:
    """The content of ``message`` from its raw MIME, not stored (a message without its raw
    MIME, or whose object is gone, reads as an empty body). ``trusted_domains``: the agent's,
    when the caller has them already (a batch of one agent's mail)."""
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
        trusted_domains=_trusted_domains(message) if trusted_domains is None else trusted_domains,
    )


def _content_row(message: Message) -> MessageContentRow | None:
    """The stored row: the one loaded with the message (``select_related("content")``), or read."""
    # Django keeps a select_related() reverse one-to-one here, None when there is no row.
    loaded = message._state.fields_cache
    if "content" in loaded:
        cached: MessageContentRow | None = loaded["content"]
        return cached
    return MessageContentRow.objects.filter(message_id=message.pk).first()


def message_content_get(*, message: Message) -> MessageContent:
    """The content of ``message``: its stored row, or computed now and stored. Computing it
    also sets the message's BodyPreview from ExtractedText (ingest's own preview is a quick
    one of the first text part, before quotes and hidden text were removed)."""
    row = _content_row(message)
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


# The reason of mail held for its content starts so: a sender's verification, which releases
# mail held for its sender, leaves it in the queue (mail.trust.held_release).
HOLD_REASON_PREFIX = "content flags: "


def message_hold_reason(*, message: Message) -> str:
    """Why the agent's ``hold_on`` policy keeps this message out of the inbox ("" when it
    does not): the content is computed (and stored) now, for agents with a policy only."""
    hold_on = message.agent.hold_on
    if not hold_on:
        return ""
    flags = [flag for flag in message_content_get(message=message).flags if flag in hold_on]
    if not flags:
        return ""
    return f"{HOLD_REASON_PREFIX}{', '.join(flags)} (the agent holds mail with these flags for review)"


def messages_hold_flagged(*, messages: list[Message]) -> set[str]:
    """At ingest, in its transaction, before any event: hold the new inbox mail whose Safety
    flags the agent's ``hold_on`` names (disposition held, the reason for staff). Returns the
    ids held; the messages are updated in place."""
    held: set[str] = set()
    for message in messages:
        if message.disposition != Message.Disposition.INBOX or not message.agent.hold_on:
            continue
        if reason := message_hold_reason(message=message):
            Message.objects.filter(pk=message.pk).update(disposition=Message.Disposition.HELD, quarantine_reason=reason)
            message.disposition, message.quarantine_reason = Message.Disposition.HELD, reason
            held.add(message.pk)
    return held


def message_contents_extract(*, message_ids: list[str]) -> int:
    """Compute and store the content of each message that has no current row (the task's
    service; idempotent), and queue the conversion of their attachments. Returns how many
    were computed. Per batch, not per message: the agents' trusted domains, the attachments,
    the rows and the previews are each one query (per message they cost more than extracting
    a small mail does)."""
    have = set(
        MessageContentRow.objects.filter(message_id__in=message_ids, version=CONTENT_VERSION).values_list(
            "message_id", flat=True
        )
    )
    todo = list(
        Message.objects.filter(pk__in=[i for i in message_ids if i not in have])
        .select_related("agent")
        .prefetch_related("attachments")
    )
    trusted: dict[int, list[str]] = {}
    rows, previews = [], []
    for message in todo:
        if message.agent_id not in trusted:
            trusted[message.agent_id] = _trusted_domains(message)
        content = message_content_compute(message=message, trusted_domains=trusted[message.agent_id])
        rows.append(MessageContentRow(message_id=message.pk, version=CONTENT_VERSION, data=_to_row(content)))
        if message.body_preview != content.body_preview:
            message.body_preview = content.body_preview
            previews.append(message)
    try:
        with transaction.atomic():
            MessageContentRow.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["message"], update_fields=["version", "data", "computed_at"]
            )
            Message.objects.bulk_update(previews, ["body_preview"])
            # A thread's LastMessagePreview is its last message's BodyPreview.
            threads_refresh(keys={(m.agent_id, m.thread_id) for m in previews})
    except IntegrityError:
        # A message of the batch was deleted meanwhile: store the others one by one.
        for message in Message.objects.filter(pk__in=[m.pk for m in todo]).select_related("agent"):
            message_content_get(message=message)
    attachment_texts_queue(message_ids=message_ids)
    return len(todo)


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


def message_received_payloads_complete(payloads: list[dict[str, Any]]) -> None:
    """Fill in ExtractedText (capped), Codes and BodyPreview of message.received payloads
    recorded without them (their agent had no webhook wanting them at ingest), as the event
    log is read: from the stored rows (only those three fields are read out of them), or
    computed now for a message whose content task has not run yet. A message deleted since
    keeps the payload it was recorded with."""
    wanted = {p["MessageID"]: p for p in payloads if "ExtractedText" not in p and isinstance(p.get("MessageID"), str)}
    if not wanted:
        return
    stored = MessageContentRow.objects.filter(message_id__in=list(wanted), version=CONTENT_VERSION).values_list(
        "message_id", "data__extracted_text", "data__codes", "data__body_preview"
    )
    for message_id, extracted_text, codes, body_preview in stored:
        fields = message_content_event_fields(
            MessageContent(extracted_text=extracted_text or "", codes=tuple(codes or ()))
        )
        wanted.pop(message_id).update(fields, BodyPreview=body_preview or "")
    for message in Message.objects.filter(pk__in=list(wanted)).select_related("agent"):
        content = message_content_get(message=message)
        wanted[message.pk].update(message_content_event_fields(content), BodyPreview=content.body_preview)


# --- Attachments as text ------------------------------------------------------------------------

# Bump when the converters' output changes: texts of an older version are converted again.
ATTACHMENT_TEXT_VERSION = 1
# What a waiting read polls at, and the Retry-After of a read that stopped waiting.
_POLL_SECONDS = 0.1
PENDING_RETRY_AFTER = 2
# A conversion queued this long ago and still pending was lost (a broker hiccup, a worker
# killed by the hard limit before it could record it): it is queued again, at most this often.
MAX_ATTEMPTS = 2
HARD_LIMIT_GRACE_SECONDS = 10
# How long a queued conversion may wait for a free worker before it counts as lost.
QUEUE_ALLOWANCE_SECONDS = 60


class AttachmentTextPending(domain.Unavailable):
    """The conversion is under way in the worker; a read after ``retry_after`` gets it."""

    code = "attachment_text_pending"


@dataclass(frozen=True)
class _Wanted:
    key: str
    sha256: str
    account_id: int


def _text_key(*, account_id: int, kind: str, sha256: str) -> str:
    # Per account: whether another tenant received the same file must not be learnt from
    # how fast (or whether) its text comes back.
    return f"t{ATTACHMENT_TEXT_VERSION}:{account_id}:{kind}:{sha256}"


def _attachment_bytes(attachment: Attachment, *, max_bytes: int) -> bytes:
    with attachment_open(attachment) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AttachmentTooLarge(f"The attachment is larger than {max_bytes} bytes.")
    return data


def _wanted(attachment: Attachment) -> _Wanted:
    """What the attachment's text is kept under. Raises ``UnsupportedAttachmentType`` or
    ``AttachmentTooLarge`` before a byte is read when the type or the size says so."""
    max_bytes = settings.ATTACHMENT_TEXT_MAX_BYTES
    kind = attachment_kind(content_type=attachment.content_type, filename=attachment.filename)
    if kind is None:
        raise UnsupportedAttachmentType(f"No text can be taken from {attachment.content_type or 'this type'}.")
    if attachment.size > max_bytes:
        raise AttachmentTooLarge(f"The attachment is larger than {max_bytes} bytes.")
    sha256 = attachment.sha256 or hashlib.sha256(_attachment_bytes(attachment, max_bytes=max_bytes)).hexdigest()
    account_id = attachment.agent.account_id
    return _Wanted(_text_key(account_id=account_id, kind=kind, sha256=sha256), sha256, account_id)


def _stale_before() -> dt.datetime:
    limit = settings.ATTACHMENT_TEXT_TIME_LIMIT + HARD_LIMIT_GRACE_SECONDS
    return timezone.now() - dt.timedelta(seconds=limit + QUEUE_ALLOWANCE_SECONDS)


def _queue(attachment_id: str) -> None:
    try:
        task_queue("mail.tasks.convert_attachment_text", attachment_id)
    except Exception:  # a broker hiccup: the row stays pending and a later read queues it again
        log.warning("could not queue the conversion of attachment %s", attachment_id, exc_info=True)


def _claim(attachment: Attachment, wanted: _Wanted) -> AttachmentText:
    """The row of this text, queueing its conversion when there is none yet or when the one
    queued before was lost (claimed by a conditional update: one reader re-queues it)."""
    row, created = AttachmentText.objects.get_or_create(
        pk=wanted.key,
        defaults={
            "status": AttachmentText.Status.PENDING,
            "account_id": wanted.account_id,
            "sha256": wanted.sha256,
            "attempts": 1,
            "text": "",
        },
    )
    if created:
        _queue(attachment.pk)
    elif row.status == AttachmentText.Status.PENDING and row.updated_at < _stale_before():
        lost = AttachmentText.objects.filter(pk=row.pk, status=row.status, updated_at=row.updated_at)
        if row.attempts >= MAX_ATTEMPTS:
            error = f"the conversion was queued {row.attempts} times and never finished (the worker died)"
            lost.update(status=AttachmentText.Status.FAILED, error=error, updated_at=timezone.now())
        elif lost.update(attempts=F("attempts") + 1, updated_at=timezone.now()):
            _queue(attachment.pk)
        row.refresh_from_db()
    return row


def _answer(row: AttachmentText) -> tuple[str, bool]:
    if row.status == AttachmentText.Status.DONE:
        return row.text, row.truncated
    if row.status == AttachmentText.Status.PENDING:
        raise AttachmentTextPending(
            "The attachment is being converted to text; retry shortly.", retry_after=PENDING_RETRY_AFTER
        )
    reasons: dict[str, str] = {
        AttachmentText.Status.TIME_LIMIT: "it took longer than the conversion time limit",
        AttachmentText.Status.UNREADABLE: "the file could not be read (broken or encrypted)",
    }
    reason = reasons.get(row.status, "the converter failed on it")
    raise UnsupportedAttachmentType(
        f"No text can be taken from this attachment: {reason}.", details={"reason": row.status}
    )


def attachment_text_get(*, attachment: Attachment) -> tuple[str, bool]:
    """The attachment as text and whether it was cut. Converted once per distinct file of an
    account, by the ``convert_attachment_text`` task (under ATTACHMENT_TEXT_TIME_LIMIT); a read
    waits up to ATTACHMENT_TEXT_WAIT_SECONDS for a conversion under way. Raises
    ``UnsupportedAttachmentType`` (a type without text, or a file that could not be converted),
    ``AttachmentTooLarge`` or ``AttachmentTextPending`` (still converting)."""
    wanted = _wanted(attachment)
    deadline = time.monotonic() + settings.ATTACHMENT_TEXT_WAIT_SECONDS
    row = _claim(attachment, wanted)
    while row.status == AttachmentText.Status.PENDING and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        row = AttachmentText.objects.filter(pk=row.pk).first() or _claim(attachment, wanted)
    return _answer(row)


def _convert(attachment: Attachment) -> dict[str, Any]:
    """The row's fields after taking the part out of its mail and converting it, both under
    the time limit; never raises for what the file holds."""
    limit = settings.ATTACHMENT_TEXT_TIME_LIMIT
    try:
        with time_limit(limit):
            data = _attachment_bytes(attachment, max_bytes=settings.ATTACHMENT_TEXT_MAX_BYTES)
            text, truncated = attachment_text(
                data=data,
                content_type=attachment.content_type,
                filename=attachment.filename,
                max_bytes=settings.ATTACHMENT_TEXT_MAX_BYTES,
            )
    except TimeLimitExceeded:
        return {"status": AttachmentText.Status.TIME_LIMIT, "error": f"ran longer than {limit:g} s", "text": ""}
    except (UnsupportedAttachmentType, AttachmentTooLarge) as exc:
        return {"status": AttachmentText.Status.UNREADABLE, "error": exc.message, "text": ""}
    except OSError:
        raise  # storage, not the file: the task retries; the row stays pending meanwhile
    except Exception as exc:  # a converter's bug on hostile input: recorded, never a 500
        log.exception("attachment %s: the converter failed", attachment.pk)
        return {"status": AttachmentText.Status.FAILED, "error": f"{type(exc).__name__}: {exc}"[:2000], "text": ""}
    return {"status": AttachmentText.Status.DONE, "error": "", "text": text, "truncated": truncated}


def attachment_text_convert(*, attachment_id: str) -> str:
    """Convert one attachment to text and store the outcome (the task's service; a spare
    run is a no-op). Returns the row's status, or "" when there is nothing to convert."""
    attachment = Attachment.objects.select_related("agent").filter(pk=attachment_id).first()
    if attachment is None:
        return ""
    try:
        wanted = _wanted(attachment)
        row = AttachmentText.objects.filter(pk=wanted.key).first()
        if row is not None and row.status != AttachmentText.Status.PENDING:
            return row.status
    except (UnsupportedAttachmentType, AttachmentTooLarge, FileNotFoundError):
        return ""
    fields = _convert(attachment)
    AttachmentText.objects.update_or_create(
        pk=wanted.key, defaults={**fields, "account_id": wanted.account_id, "sha256": wanted.sha256}
    )
    return str(fields["status"])


def attachment_text_fail(*, attachment_id: str, error: str) -> None:
    """Record that the conversion was stopped from outside (the task's hard time limit
    killed the worker process): its row is a time-limit failure, not pending forever."""
    attachment = Attachment.objects.select_related("agent").filter(pk=attachment_id).first()
    if attachment is None:
        return
    try:
        wanted = _wanted(attachment)
    except (UnsupportedAttachmentType, AttachmentTooLarge, FileNotFoundError):
        return
    AttachmentText.objects.filter(pk=wanted.key, status=AttachmentText.Status.PENDING).update(
        status=AttachmentText.Status.TIME_LIMIT, error=error[:2000], updated_at=timezone.now()
    )


def attachment_texts_queue(*, message_ids: list[str]) -> int:
    """Convert the attachments of new mail ahead of the first read: every part of a type with
    text, under the size cap, that has no text yet. Returns how many were queued."""
    queued = 0
    max_bytes = settings.ATTACHMENT_TEXT_MAX_BYTES
    for attachment in Attachment.objects.filter(message_id__in=message_ids, size__lte=max_bytes).select_related(
        "agent"
    ):
        if attachment_kind(content_type=attachment.content_type, filename=attachment.filename) is None:
            continue
        if not attachment.sha256:
            continue  # the first read hashes it; nothing to read ahead of it here
        wanted = _wanted(attachment)
        if not AttachmentText.objects.filter(pk=wanted.key).exists():
            _claim(attachment, wanted)
            queued += 1
    return queued


def attachment_texts_prune(*, account_id: int, sha256s: Iterable[str]) -> int:
    """Forget the account's texts of these files once no attachment of its unarchived mail
    has them (after a delete, or an archive by retention). Returns how many were deleted."""
    wanted = {sha for sha in sha256s if sha}
    if not wanted:
        return 0
    kept = set(
        Attachment.objects.filter(
            agent__account_id=account_id, sha256__in=wanted, message__isnull=False, message__archived=False
        ).values_list("sha256", flat=True)
    )
    deleted, _ = AttachmentText.objects.filter(account_id=account_id, sha256__in=wanted - kept).delete()
    return deleted


def message_contents_forget(*, messages: list[Message]) -> None:
    """Drop what was computed from mail that retention archived: its content rows (read
    again from the archive when asked) and the texts of its attachments that no unarchived
    mail of the account still has."""
    ids = [m.pk for m in messages]
    MessageContentRow.objects.filter(message_id__in=ids).delete()
    shas: dict[int, set[str]] = {}
    for account_id, sha in (
        Attachment.objects.filter(message_id__in=ids).exclude(sha256="").values_list("agent__account_id", "sha256")
    ):
        shas.setdefault(account_id, set()).add(sha)
    for account_id, wanted in shas.items():
        attachment_texts_prune(account_id=account_id, sha256s=wanted)

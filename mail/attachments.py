"""Attachments: claim-check uploads for sending, and parts of received mail.

The sending service depends only on ``attachments_for_send``, ``attachment_open`` and
``attachments_mark_claimed``; the rest serves the attachments API.

Uploads live in the mail storage under ``uploads/<AttachmentID>``: on S3 the client POSTs
straight to the bucket with a presigned policy that pins the exact size and content type;
in embedded mode it PUTs to our own signed endpoint, which streams to storage in chunks.
Parts of received mail are stored once at ingest under ``parts/<sha256>`` (content-addressed,
shared by every recipient), so a download streams a file and never re-parses the raw MIME
(bench/attachments_memory.py has the figures behind that choice).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import tempfile
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from assmbl.errors import ApiError, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from directory.models import Agent
from mail.models import Attachment, Message
from mail.parsing import ParsedMail, parse_message_object, part_decode_to, sanitize_filename, walk_parts
from mail.rawstore import rawstore
from mail.storage import raw_open

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIGNER_SALT = "mail.attachments.upload"
_LIVE_UPLOAD_STATES = (Attachment.State.PENDING, Attachment.State.UPLOADED)


class UploadUrlInvalid(ApiError):
    status_code = 403
    code = "invalid_upload_url"
    default_detail = "The upload URL is invalid or has expired."


class LengthRequired(ApiError):
    status_code = 411
    code = "content_length_required"
    default_detail = "A Content-Length header is required."


def upload_key(attachment_id: str) -> str:
    return f"uploads/{attachment_id}"


def part_key(sha256: str) -> str:
    return f"parts/{sha256[:2]}/{sha256}"


# --- Claim-check uploads ---------------------------------------------------------------------


@dataclass(frozen=True)
class UploadTicket:
    attachment: Attachment
    url: str
    method: str
    fields: dict[str, str] | None


def attachment_create(*, agent: Agent, filename: Any, content_type: Any, size: Any, sha256: Any = None) -> UploadTicket:
    """Reserve an upload: a pending Attachment and the URL its bytes go to."""
    errors: dict[str, str] = {}
    clean_name = sanitize_filename(filename) if isinstance(filename, str) else ""
    if not clean_name:
        errors["filename"] = "A non-empty file name is required."
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type.strip()):
        errors["content_type"] = "A media type such as application/pdf is required."
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        errors["size"] = "The size in bytes is required, as a whole number."
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256.lower())):
        errors["sha256"] = "The SHA-256 of the bytes, as 64 hexadecimal characters."
    if errors:
        raise ValidationFailed(next(iter(errors.values())), details=errors)
    if size > settings.MAX_ATTACHMENT_BYTES:
        raise PayloadTooLarge(
            f"An attachment may be at most {settings.MAX_ATTACHMENT_BYTES} bytes.",
            code="attachment_too_large",
            details={"size": size, "max_size": settings.MAX_ATTACHMENT_BYTES},
        )
    expires_at = timezone.now() + dt.timedelta(seconds=settings.ATTACHMENT_UPLOAD_TTL_SECONDS)
    with transaction.atomic():
        attachment = Attachment.objects.create(
            agent=agent,
            kind=Attachment.Kind.UPLOAD,
            state=Attachment.State.PENDING,
            filename=clean_name[:255],
            content_type=content_type.strip().lower(),
            size=size,
            sha256=(sha256 or "").lower(),
            expires_at=expires_at,
        )
        attachment.storage_key = upload_key(attachment.id)
        attachment.save(update_fields=["storage_key"])
    store = rawstore()
    if store.direct_uploads:
        expires_in = max(1, int((expires_at - timezone.now()).total_seconds()))
        url, fields = store.upload_form(
            attachment.storage_key, size=attachment.size, content_type=attachment.content_type, expires_in=expires_in
        )
        return UploadTicket(attachment, url, "POST", fields)
    return UploadTicket(attachment, upload_url(attachment), "PUT", None)


def _upload_signature(attachment_id: str, expires: int) -> str:
    return signing.Signer(salt=_SIGNER_SALT).signature(f"{attachment_id}:{expires}")


def upload_url(attachment: Attachment) -> str:
    """Our own upload endpoint, signed so that the URL alone authorises one upload."""
    assert attachment.expires_at is not None
    expires = int(attachment.expires_at.timestamp())
    signature = _upload_signature(attachment.id, expires)
    return f"{settings.PUBLIC_BASE_URL}/v1/attachments/{attachment.id}/upload?expires={expires}&signature={signature}"


def attachment_for_agent_or_404(*, agent: Agent, attachment_id: str) -> Attachment:
    attachment = Attachment.objects.filter(agent=agent, kind=Attachment.Kind.UPLOAD, pk=attachment_id).first()
    if attachment is None:
        raise NotFound("No such attachment.", code="attachment_not_found")
    return attachment


def _past_expiry(attachment: Attachment) -> bool:
    return (
        attachment.state in _LIVE_UPLOAD_STATES
        and attachment.expires_at is not None
        and attachment.expires_at <= timezone.now()
    )


def attachment_refresh(*, attachment: Attachment) -> Attachment:
    """The upload's current state. On S3 nobody tells us an upload finished: a pending
    upload becomes ``uploaded`` when a HEAD finds the object with the declared size and
    type (and the declared checksum, verified by streaming the object once)."""
    if _past_expiry(attachment):
        attachment.state = Attachment.State.EXPIRED
        return attachment
    store = rawstore()
    if attachment.state != Attachment.State.PENDING or not store.direct_uploads:
        return attachment
    stat = store.object_stat(attachment.storage_key)
    if stat is None or stat.size != attachment.size or stat.content_type != attachment.content_type:
        return attachment
    with store.object_open(attachment.storage_key) as fh:
        actual = _sha256_of(fh)
    if attachment.sha256 and actual != attachment.sha256:
        return attachment
    Attachment.objects.filter(pk=attachment.pk, state=Attachment.State.PENDING).update(
        state=Attachment.State.UPLOADED, sha256=actual
    )
    attachment.refresh_from_db()
    return attachment


def _sha256_of(fh: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def attachment_upload_receive(
    *,
    attachment_id: str,
    expires: str,
    signature: str,
    stream: IO[bytes],
    content_length: int | None,
    content_type: str,
) -> Attachment:
    """Embedded mode's upload endpoint: check the signed URL, stream the body to storage in
    chunks (never all in memory), refuse more bytes than declared (413) or a body whose
    size, type or checksum differs from the declaration (400 ``attachment_mismatch``)."""
    attachment = _upload_authorised(attachment_id=attachment_id, expires=expires, signature=signature)
    _upload_headers_check(attachment, content_length=content_length, content_type=content_type)
    with tempfile.TemporaryFile() as spool:
        actual = _upload_spool(attachment, stream=stream, spool=spool)
        spool.seek(0)
        rawstore().object_save(attachment.storage_key, spool)
    updated = Attachment.objects.filter(pk=attachment.pk, state=Attachment.State.PENDING).update(
        state=Attachment.State.UPLOADED, sha256=actual
    )
    if not updated:
        raise Conflict("This attachment has already been uploaded.", code="attachment_already_uploaded")
    attachment.refresh_from_db()
    return attachment


def _upload_authorised(*, attachment_id: str, expires: str, signature: str) -> Attachment:
    """The pending upload the signed URL names; 403 for a bad or expired URL."""
    invalid = UploadUrlInvalid()
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        raise invalid from None
    if not constant_time_compare(signature or "", _upload_signature(attachment_id, expires_at)):
        raise invalid
    if expires_at <= int(timezone.now().timestamp()):
        raise invalid
    attachment = Attachment.objects.filter(pk=attachment_id, kind=Attachment.Kind.UPLOAD).first()
    if attachment is None or _past_expiry(attachment) or attachment.state == Attachment.State.EXPIRED:
        raise invalid
    if attachment.state != Attachment.State.PENDING:
        raise Conflict("This attachment has already been uploaded.", code="attachment_already_uploaded")
    return attachment


def _too_large(attachment: Attachment) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is larger than the declared size of {attachment.size} bytes.",
        code="attachment_too_large",
        details={"declared_size": attachment.size},
    )


def _upload_headers_check(attachment: Attachment, *, content_length: int | None, content_type: str) -> None:
    """What the request's headers say, against the declaration, before a byte is read."""
    if content_length is None and attachment.size > 0:
        # Under WSGI a body without Content-Length (chunked) reaches Django as empty.
        raise LengthRequired()
    if content_length is not None and content_length > attachment.size:
        raise _too_large(attachment)
    declared_type = (content_type or "").split(";", 1)[0].strip().lower()
    if declared_type and declared_type != attachment.content_type:
        raise ValidationFailed(
            "The Content-Type differs from the declared content type.",
            code="attachment_mismatch",
            details={"content_type": attachment.content_type},
        )


def _upload_spool(attachment: Attachment, *, stream: IO[bytes], spool: IO[bytes]) -> str:
    """Copy the body into ``spool`` in chunks, checking size and checksum; its SHA-256."""
    digest = hashlib.sha256()
    received = 0
    while True:
        # Read at most one byte past the declaration: enough to know it is too big.
        chunk = stream.read(min(CHUNK_BYTES, attachment.size + 1 - received))
        if not chunk:
            break
        received += len(chunk)
        if received > attachment.size:
            raise _too_large(attachment)
        digest.update(chunk)
        spool.write(chunk)
    actual = digest.hexdigest()
    if received != attachment.size:
        raise ValidationFailed(
            f"Received {received} bytes; {attachment.size} were declared.",
            code="attachment_mismatch",
            details={"declared_size": attachment.size, "received": received},
        )
    if attachment.sha256 and actual != attachment.sha256:
        raise ValidationFailed(
            "The SHA-256 of the body differs from the declared checksum.",
            code="attachment_mismatch",
            details={"declared_sha256": attachment.sha256, "sha256": actual},
        )
    return actual


# --- The interface used by sending -------------------------------------------------------------


def attachments_for_send(*, agent: Agent, attachment_ids: list[str]) -> list[Attachment]:
    """The agent's uploaded attachments, checked (uploaded, size, checksum, type) and ready
    to attach. Raises ValidationFailed (400) with code ``attachment_not_uploaded`` or
    ``attachment_mismatch``; an id of another agent is treated as not uploaded."""
    if not attachment_ids:
        return []
    if not isinstance(attachment_ids, list) or not all(isinstance(i, str) for i in attachment_ids):
        raise ValidationFailed("attachments: a list of AttachmentIDs.", details={"attachments": attachment_ids})
    ids = list(dict.fromkeys(attachment_ids))
    if len(ids) > settings.MAX_ATTACHMENTS_PER_MESSAGE:
        raise ValidationFailed(
            f"At most {settings.MAX_ATTACHMENTS_PER_MESSAGE} attachments per message.",
            code="too_many_attachments",
            details={"count": len(ids), "max_count": settings.MAX_ATTACHMENTS_PER_MESSAGE},
        )
    found = {att.pk: att for att in Attachment.objects.filter(agent=agent, kind=Attachment.Kind.UPLOAD, pk__in=ids)}
    result: list[Attachment] = []
    for attachment_id in ids:
        attachment = found.get(attachment_id)
        if attachment is not None:
            attachment = attachment_refresh(attachment=attachment)
        if attachment is None or attachment.state != Attachment.State.UPLOADED:
            # Unknown, another agent's, never uploaded, expired or already sent: one answer,
            # so that ids of other agents cannot be probed.
            raise ValidationFailed(
                f"Attachment {attachment_id} has not been uploaded (or has expired).",
                code="attachment_not_uploaded",
                details={"attachment": attachment_id, "state": attachment.state if attachment else None},
            )
        _verify_stored(attachment)
        result.append(attachment)
    total = sum(att.size for att in result)
    if total > settings.MAX_MESSAGE_ATTACHMENT_BYTES:
        raise PayloadTooLarge(
            f"Attachments of one message may total at most {settings.MAX_MESSAGE_ATTACHMENT_BYTES} bytes.",
            code="attachments_too_large",
            details={"total_size": total, "max_total_size": settings.MAX_MESSAGE_ATTACHMENT_BYTES},
        )
    return result


def _verify_stored(attachment: Attachment) -> None:
    """The bytes are still there, with the size and type that were checked at upload (the
    checksum was verified while they streamed in, or when S3's object was first seen)."""
    mismatch = ValidationFailed(
        f"Attachment {attachment.id} in storage differs from its declaration.",
        code="attachment_mismatch",
        details={"attachment": attachment.id},
    )
    if not _CONTENT_TYPE.match(attachment.content_type) or not _SHA256.match(attachment.sha256 or ""):
        raise mismatch
    stat = rawstore().object_stat(attachment.storage_key)
    if stat is None or stat.size != attachment.size:
        raise mismatch
    if stat.content_type is not None and stat.content_type != attachment.content_type:
        raise mismatch


def attachment_open(attachment: Attachment) -> IO[bytes]:
    """A binary file object over an attachment's bytes (for building the outbound MIME,
    or for a download). An inbound part without its stored object (an empty storage_key,
    or an object pruned by a delete that raced with this message's ingest:
    ``attachment_objects_prune``) is extracted from the raw MIME."""
    if attachment.storage_key:
        # A part is checked for its size where that costs no request (a local part cut
        # short by a crash before it reached the disk is never served; the raw MIME,
        # synced before its delivery committed, is whole).
        size = attachment.size if attachment.part_index is not None else None
        try:
            return rawstore().object_open(attachment.storage_key, size=size)
        except FileNotFoundError:
            if attachment.part_index is None:
                raise
            log.warning(
                "attachment %s: part object %s missing or cut short; extracting it",
                attachment.pk,
                attachment.storage_key,
            )
    return ContentFile(_extract_part(attachment), name=attachment.filename or attachment.id)


def attachment_objects_prune(keys: list[str]) -> None:
    """Delete the stored objects of these attachment keys that no attachment row references
    any more (called after a message delete commits). Parts are content-addressed and
    shared by every message carrying the same bytes, so a key still referenced stays. An
    ingest storing the same part at this moment may find it gone later; its download then
    extracts the part from the raw MIME (``attachment_open``)."""
    held = set(Attachment.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
    store = rawstore()
    for key in sorted(set(keys) - held):
        try:
            store.object_delete(key)
        except Exception:  # storage trouble must not fail the delete that already committed
            log.warning("could not delete attachment object %s", key, exc_info=True)


def _extract_part(attachment: Attachment) -> bytes:
    message = attachment.message
    if message is None or attachment.part_index is None:
        raise NotFound("No such attachment.", code="attachment_not_found")
    with raw_open(message.storage_key, archived=message.archived) as fh:
        parsed = parse_message_object(fh.read())
    parts = walk_parts(parsed)
    if attachment.part_index >= len(parts):
        raise NotFound("No such attachment.", code="attachment_not_found")
    payload = parts[attachment.part_index][1].get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def attachments_mark_claimed(*, attachments: list[Attachment], message: Message) -> None:
    """Record that these uploads were sent with ``message`` (called in the send transaction).

    A conditional update, so that a concurrent expiry sweep or a second send of the same
    upload makes this one fail (409) instead of both believing they own it."""
    if not attachments:
        return
    ids = [att.pk for att in attachments]
    claimed = Attachment.objects.filter(
        pk__in=ids, agent=message.agent, kind=Attachment.Kind.UPLOAD, state=Attachment.State.UPLOADED
    ).update(state=Attachment.State.CLAIMED, message=message, expires_at=None)
    if claimed != len(set(ids)):
        raise Conflict(
            "An attachment was sent or expired while this message was being sent.",
            code="attachment_claimed",
            details={"attachments": ids},
        )
    for att in attachments:
        att.state, att.message, att.expires_at = Attachment.State.CLAIMED, message, None


# --- Expiry ------------------------------------------------------------------------------------


def attachments_expire(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Delete unclaimed uploads past their expiry. The row flips to ``expired`` first, with
    a conditional update, so that a send claiming it at the same moment loses cleanly; the
    bytes are deleted after. Safe to run twice."""
    now = now or timezone.now()
    candidates = list(
        Attachment.objects.filter(
            kind=Attachment.Kind.UPLOAD, state__in=_LIVE_UPLOAD_STATES, expires_at__lte=now
        ).values_list("pk", "storage_key")[:limit]
    )
    store = rawstore()
    expired = 0
    for pk, key in candidates:
        flipped = Attachment.objects.filter(pk=pk, state__in=_LIVE_UPLOAD_STATES, expires_at__lte=now).update(
            state=Attachment.State.EXPIRED
        )
        if not flipped:
            continue
        expired += 1
        if key:
            store.object_delete(key)
    return expired


# --- Parts of received mail --------------------------------------------------------------------


def attachment_parts_store(*, parsed: ParsedMail) -> None:
    """Store each decoded part once, content-addressed, and drop the bytes from memory.
    Idempotent: a second recipient of the same delivery, or a retried task, finds the keys."""
    for att in parsed.attachments:
        if att.storage_key or att.part is None:
            continue
        # Decoded into a temp file (spilling to disk past 1 MiB), one part at a time.
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as tmp:
            att.sha256, att.size = part_decode_to(att.part, tmp)
            key = part_key(att.sha256)
            tmp.seek(0)
            rawstore().object_put(key, tmp, att.size)
        att.storage_key = key
        att.part = None


def inbound_attachment_or_404(*, message: Message, attachment_id: str) -> Attachment:
    attachment = message.attachments.filter(pk=attachment_id).select_related("message").first()
    if attachment is None:
        raise NotFound("No such attachment.", code="attachment_not_found")
    return attachment


def download_filename(attachment: Attachment) -> str:
    """The part's own name, or ``attachment.<ext>`` for a nameless part (an inline image)."""
    import mimetypes

    return sanitize_filename(attachment.filename) or "attachment" + (
        mimetypes.guess_extension(attachment.content_type, strict=False) or ".bin"
    )


def attachment_download_url(*, attachment: Attachment) -> tuple[str, dt.datetime]:
    """S3 mode: a short-lived presigned GET URL that answers with the same safe headers
    our own download would send."""
    from django.utils.http import content_disposition_header

    ttl = settings.ATTACHMENT_DOWNLOAD_URL_TTL_SECONDS
    url = rawstore().download_url(
        attachment.storage_key,
        content_type=attachment.content_type,
        disposition=content_disposition_header(True, download_filename(attachment)) or "attachment",
        expires_in=ttl,
    )
    return url, timezone.now() + dt.timedelta(seconds=ttl)


def attachment_store(*, agent: Agent, filename: Any, content_type: Any, content: bytes) -> Attachment:
    """An upload whose bytes the server already holds (a part of a message an agent
    submitted over SMTP): reserved as ``attachment_create`` reserves one, with its checks
    and limits, then stored and marked uploaded, ready for ``attachments_for_send``."""
    ticket = attachment_create(
        agent=agent,
        filename=filename,
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    attachment = ticket.attachment
    rawstore().object_save(attachment.storage_key, ContentFile(content))
    Attachment.objects.filter(pk=attachment.pk, state=Attachment.State.PENDING).update(state=Attachment.State.UPLOADED)
    attachment.refresh_from_db()
    return attachment

"""Dispatch (the worker hands stored bytes to the email backend, at most once) and
tracking (provider events move an outbound message's status forward)."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from email.generator import BytesGenerator
from email.message import Message as MimeMessage
from email.parser import BytesParser
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from assmbl.faults import fault_point
from assmbl.ids import new_id
from mail.models import Message
from mail.serializers import message_item
from mail.storage import raw_read
from webhooks.services import event_record

log = logging.getLogger(__name__)


class TransientSendError(Exception):
    """The provider or relay could not take the message now; the task retries with backoff."""


class _StoredMime(MimeMessage):
    """The stored bytes as a stdlib message that Django's SMTP backend (which passes
    ``linesep``) and anymail (which walks the parts) can both serialise."""

    def as_bytes(self, unixfrom: bool = False, policy: Any = None, linesep: str = "\n") -> bytes:
        fp = BytesIO()
        BytesGenerator(fp, mangle_from_=False, policy=(policy or self.policy).clone(linesep=linesep)).flatten(
            self, unixfrom=unixfrom
        )
        return fp.getvalue()


class StoredEmailMessage(EmailMessage):
    """A Django EmailMessage over raw MIME that was already built and stored: the backend
    sends exactly these bytes (to/cc/bcc give the envelope; Bcc is not in the bytes)."""

    def __init__(self, *, raw: bytes, message_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raw = raw
        self.assmbl_message_id = message_id
        self.provider_message_id = ""

    def message(self, *, policy: Any = None) -> Any:
        return BytesParser(_class=_StoredMime).parsebytes(self.raw)


def _ses_message_id_header(ses_id: str) -> str:
    # SES replaces our Message-ID with its own, built from the message id it returns.
    region = settings.AWS_REGION
    host = "email.amazonses.com" if region == "us-east-1" else f"{region}.amazonses.com"
    return f"<{ses_id}@{host}>"


_PERMANENT_SES_CODES = {
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "MailFromDomainNotVerified",
    "BadRequestException",
    "NotFoundException",
    "ConfigurationSetDoesNotExistException",
    "ConfigurationSetDoesNotExist",
    "AccountSuspendedException",
    "SendingPausedException",
}


def _is_permanent(exc: Exception) -> bool:
    """Errors that retrying cannot fix: the message is marked failed instead."""
    from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused

    if isinstance(exc, (AnymailRecipientsRefused, AnymailInvalidAddress, smtplib.SMTPRecipientsRefused)):
        return True
    if isinstance(exc, (smtplib.SMTPDataError, smtplib.SMTPSenderRefused)):
        return 500 <= exc.smtp_code < 600
    if isinstance(exc, AnymailAPIError):
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code") in _PERMANENT_SES_CODES
    return False


# A send's token in provider_message_id: "claim:" while the worker prepares it and opens the
# connection (a worker that dies here has handed nothing over: the claim is released later
# and the message retried), "handoff:" from the first byte of the message on an open
# connection until the provider's answer is recorded (a worker that dies here leaves the
# message in doubt: the provider may have it).
CLAIM_PREFIX = "claim:"
HANDOFF_PREFIX = "handoff:"


def message_dispatch(*, message_id: str) -> Message | None:
    """Hand a queued message to the email backend, at most once.

    The worker first claims the message with a conditional update (queued, no provider
    id yet → a claim token), so a second copy of the task (redelivery, the sweep) finds it
    taken and does nothing. No lock is held during the provider call: with SQLite a held
    write lock would stall every writer, including our own SMTP listener when relaying to
    it. The connection is opened under the claim (TCP, EHLO, STARTTLS, AUTH; the SES
    client), the claim becomes the handoff token only once the message can go out, and the
    connection is closed (QUIT) after the result is recorded: a worker that dies leaves its
    message in doubt only while the provider holds the message and we do not know its
    answer. A transient error *before* acceptance releases the token and the task retries
    with backoff.
    """
    claim = f"{CLAIM_PREFIX}{new_id('snd')}"
    claimed = Message.objects.filter(
        pk=message_id, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED, provider_message_id=""
    ).update(provider_message_id=claim, updated_at=timezone.now())
    message = Message.objects.select_related("agent").filter(pk=message_id).first()
    if not claimed or message is None:
        return message
    email = _email_prepare(message, claim)
    connection = _connection_open(message, claim)
    try:
        handoff = HANDOFF_PREFIX + claim.removeprefix(CLAIM_PREFIX)
        handed = Message.objects.filter(pk=message.pk, provider_message_id=claim).update(
            provider_message_id=handoff, updated_at=timezone.now()
        )
        if not handed:
            return message  # the claim went stale and was released meanwhile
        return _handoff(message, email, connection, handoff)
    finally:
        _connection_close(connection, message)


def _handoff(message: Message, email: StoredEmailMessage, connection: BaseEmailBackend, handoff: str) -> Message:
    """Send on the open connection and record the provider's answer: the in-doubt window."""
    try:
        connection.send_messages([email])
    except Exception as exc:
        if not _is_permanent(exc):
            Message.objects.filter(pk=message.pk, provider_message_id=handoff).update(provider_message_id="")
            raise TransientSendError(str(exc)) from exc
        return _dispatch_record(message, claim=handoff, status=Message.Status.FAILED, detail=str(exc)[:2000])
    # Accepted by the provider, not yet recorded: the window the reliability tests kill.
    fault_point("send.after_provider_accept")
    anymail_status = getattr(email, "anymail_status", None)
    provider_id = getattr(anymail_status, "message_id", None) or email.provider_message_id or ""
    if not isinstance(provider_id, str):
        provider_id = ""  # anymail gives a set when recipients got different ids
    internet_message_id = message.internet_message_id
    if provider_id and settings.EMAIL_BACKEND == "anymail.backends.amazon_ses.EmailBackend":
        internet_message_id = _ses_message_id_header(provider_id)
    return _dispatch_record(
        message,
        claim=handoff,
        status=Message.Status.SENT,
        provider_message_id=provider_id,
        internet_message_id=internet_message_id,
    )


def _claim_release(message: Message, claim: str) -> None:
    Message.objects.filter(pk=message.pk, provider_message_id=claim).update(provider_message_id="")


def _email_prepare(message: Message, claim: str) -> StoredEmailMessage:
    """The stored bytes as the message the backend sends."""
    try:
        raw = raw_read(message.storage_key)
    except Exception:
        # Storage unreachable (S3 hiccup, a missing mount): nothing was handed over, so the
        # claim is released and the task retries; a claim kept here would never be sent.
        _claim_release(message, claim)
        raise
    return StoredEmailMessage(
        raw=raw,
        message_id=message.id,
        subject=message.subject,
        from_email=message.from_header,
        to=list(message.to),
        cc=list(message.cc),
        bcc=list(message.bcc),
    )


def _connection_open(message: Message, claim: str) -> BaseEmailBackend:
    """The backend with its connection open (SMTP: TCP, EHLO, STARTTLS, AUTH; SES: the
    client). Nothing of the message has left yet, so any error releases the claim and is
    transient, a refused login included: the task retries with backoff and gives up
    visibly (``message_fail``) when it is not fixed in time."""
    connection: BaseEmailBackend | None = None
    try:
        connection = get_connection()
        connection.open()
    except Exception as exc:
        _claim_release(message, claim)
        if connection is not None:
            _connection_close(connection, message)  # Django keeps a half-open SMTP connection
        raise TransientSendError(str(exc)) from exc
    return connection


def _connection_close(connection: BaseEmailBackend, message: Message) -> None:
    # After the result is recorded: a QUIT that fails or hangs until the timeout changes
    # nothing about what the provider took.
    try:
        connection.close()
    except Exception:
        log.warning("closing the connection after sending %s failed", message.id, exc_info=True)


def message_fail(*, message_id: str, detail: str) -> Message | None:
    """Give up on a queued message that is not being sent right now (retries exhausted)."""
    claim = f"{CLAIM_PREFIX}{new_id('snd')}"
    claimed = Message.objects.filter(
        pk=message_id, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED, provider_message_id=""
    ).update(provider_message_id=claim, updated_at=timezone.now())
    message = Message.objects.select_related("agent").filter(pk=message_id).first()
    if not claimed or message is None:
        return message
    return _dispatch_record(message, claim=claim, status=Message.Status.FAILED, detail=detail[:2000])


def _dispatch_record(message: Message, *, claim: str, status: str, detail: str = "", **fields: str) -> Message:
    with transaction.atomic():
        Message.objects.filter(pk=message.pk, provider_message_id=claim).update(
            status=status,
            status_detail=detail,
            provider_message_id=fields.get("provider_message_id", ""),
            updated_at=timezone.now(),
            **{k: v for k, v in fields.items() if k != "provider_message_id"},
        )
        message.refresh_from_db()
        event_record(agent=message.agent, type=f"message.{status}", payload=_event_payload(message))
    return message


def _event_payload(message: Message, **extra: Any) -> dict[str, Any]:
    return {**message_item(message), "StatusDetail": message.status_detail, **extra}


def message_event_record(*, message: Message, type: str, **extra: Any) -> None:
    """Record an outbound message's event (payload: the item, StatusDetail, ``extra``)."""
    event_record(agent=message.agent, type=type, payload=_event_payload(message, **extra))


def messages_queued_stale(*, older_than: dt.timedelta) -> list[str]:
    cutoff = timezone.now() - older_than
    return list(
        Message.objects.outbound()
        .filter(status=Message.Status.QUEUED, received_at__lt=cutoff)
        .values_list("id", flat=True)[:1000]
    )


IN_DOUBT_DETAIL = (
    "in doubt: the worker stopped while handing the message to the transport; the provider may or "
    "may not have it, and it is not sent again"
)


def messages_claims_expire(*, older_than: dt.timedelta) -> list[str]:
    """Sends whose worker died (SIGKILL, a lost host), found by a token older than any send
    takes. Died before the handoff: the claim is released and the sweep queues the message
    again. Died during it: whether the provider took the message is unknown, and sending
    again could deliver it twice, so it is marked ``failed`` with a detail that says so and
    a ``message.failed`` event: the agent and staff see it, nothing is resent. Returns the
    ids marked failed."""
    cutoff = timezone.now() - older_than
    stale = Message.objects.outbound().filter(status=Message.Status.QUEUED, updated_at__lt=cutoff)
    stale.filter(provider_message_id__startswith=CLAIM_PREFIX).update(provider_message_id="")
    in_doubt = list(
        stale.filter(provider_message_id__startswith=HANDOFF_PREFIX).values_list("id", "provider_message_id")[:1000]
    )
    expired = []
    for message_id, token in in_doubt:
        with transaction.atomic():
            taken = Message.objects.filter(
                pk=message_id, status=Message.Status.QUEUED, provider_message_id=token
            ).update(status=Message.Status.FAILED, status_detail=IN_DOUBT_DETAIL, updated_at=timezone.now())
            if taken:
                message = Message.objects.select_related("agent").get(pk=message_id)
                event_record(agent=message.agent, type="message.failed", payload=_event_payload(message))
                expired.append(message_id)
    return expired


# --- Tracking (provider events) ----------------------------------------------------------------

# Forward-only: a late "delivered" never undoes a bounce; a complaint can follow a delivery.
_STATUS_RANK: dict[str, int] = {
    Message.Status.QUEUED: 0,
    Message.Status.SENT: 1,
    Message.Status.DELIVERED: 2,
    Message.Status.BOUNCED: 3,
    Message.Status.FAILED: 3,
    Message.Status.COMPLAINED: 4,
}
TRACKING_STATUS = {
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "bounced": Message.Status.BOUNCED,
    "complained": Message.Status.COMPLAINED,
    "rejected": Message.Status.FAILED,
    "failed": Message.Status.FAILED,
}


def message_track(*, provider_message_id: str, event_type: str, detail: str = "") -> Message | None:
    """Apply a provider's tracking event (anymail's normalised event_type) to the message."""
    status = TRACKING_STATUS.get(event_type)
    if status is None or not provider_message_id:
        return None
    with transaction.atomic():
        message = (
            Message.objects.select_for_update()
            .select_related("agent")
            .filter(provider_message_id=provider_message_id, direction=Message.Direction.OUTBOUND)
            .first()
        )
        if message is None or _STATUS_RANK[status] <= _STATUS_RANK.get(message.status, 0):
            return message
        message.status = status
        message.status_detail = detail[:2000]
        message.save(update_fields=["status", "status_detail", "updated_at"])
        event_record(agent=message.agent, type=f"message.{status}", payload=_event_payload(message))
    return message

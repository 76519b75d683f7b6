"""Sending: POST /v1/send, replies and forwards, and the bot-loop breaker.

The raw MIME of an outbound message is built once, here, stored like inbound mail, and
the worker (``mail.dispatch``) hands exactly those bytes to the configured email backend
(anymail SES, an SMTP relay, or the embedded LocalEmailBackend). Idempotency keys are
``mail.idempotency``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.utils import formataddr, getaddresses, make_msgid
from typing import Any, TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import SafeMIMEMultipart, SafeMIMEText
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from assmbl import domain
from assmbl.celery import task_queue
from assmbl.inputs import HEADER_TEXT_PATTERN
from directory.models import Agent
from mail.addresses import address_bare, address_is_agents, address_is_local
from mail.attachments import attachment_open, attachments_for_send, attachments_mark_claimed
from mail.message_content import message_contents_queue
from mail.models import Attachment, Message
from mail.outbound import governed_announce, outbound_govern
from mail.parsing import html_to_text, make_preview
from mail.storage import raw_read, raw_store
from mail.threads import subject_forward, subject_reply, thread_id_for, threads_refresh

HEADER_TEXT = re.compile(HEADER_TEXT_PATTERN)


# --- Input ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A validated message to send; addresses are formatted ``Name <addr>`` strings."""

    to: list[str]
    subject: str
    body: str | None = None
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    attachment_ids: list[str] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]


def addresses_clean(field_name: str, value: list[str], *, required: bool = False) -> list[str]:
    """Strings fit for a header (``mail.serializers.AddressesField``), each one address
    → formatted addresses."""
    if not value:
        if required:
            raise domain.Invalid(f"{field_name} is required.", code="missing_field", details={"field": field_name})
        return []
    cleaned = []
    for item in value:
        if not HEADER_TEXT.match(item):
            # The API refuses these at validation; a reply's recipients come from a received
            # mail, which may carry anything.
            raise domain.Invalid(
                f"{field_name} must not contain control characters or line breaks.",
                code="header_injection",
                details={"field": field_name},
            )
        parsed = getaddresses([item])
        name, address = parsed[0] if len(parsed) == 1 else ("", "")
        try:
            validate_email(address)
        except ValidationError:
            raise domain.Invalid(
                f"{field_name}: {item!r} is not a valid email address.",
                code="invalid_address",
                details={"field": field_name, "value": item},
            ) from None
        cleaned.append(formataddr((name, address)) if name else address)
    return cleaned


def outgoing_parse(data: dict[str, Any]) -> Outgoing:
    """The validated body of POST /v1/send (``mail.serializers.SendInput``) as a message:
    each address checked and formatted."""
    return Outgoing(
        to=addresses_clean("to", data["to"], required=True),
        cc=addresses_clean("cc", data.get("cc", [])),
        bcc=addresses_clean("bcc", data.get("bcc", [])),
        reply_to=addresses_clean("reply_to", data.get("reply_to", [])),
        subject=data["subject"],
        body=data.get("body"),
        html=data.get("html"),
        headers=dict(data.get("headers") or {}),
        attachment_ids=list(dict.fromkeys(data.get("attachments") or [])),
    )


# --- Building and queueing ---------------------------------------------------------------


def _recipients_check(outgoing: Outgoing) -> None:
    if not outgoing.recipients:
        raise domain.Invalid("At least one recipient is required.", code="missing_field", details={"field": "to"})
    if len(outgoing.recipients) > settings.MAX_RECIPIENTS:
        raise domain.Invalid(
            f"At most {settings.MAX_RECIPIENTS} recipients (to + cc + bcc) per message.",
            code="too_many_recipients",
            details={"count": len(outgoing.recipients), "limit": settings.MAX_RECIPIENTS},
        )


def mime_build(
    *,
    agent: Agent,
    outgoing: Outgoing,
    message_id: str,
    in_reply_to: str = "",
    references: list[str] | None = None,
    auto_submitted: str = "",
    idempotency_key: str = "",
    attachments: Iterable[Attachment] = (),
    forwarded_raw: bytes | None = None,
) -> bytes:
    headers: dict[str, str] = {"Message-ID": message_id, **outgoing.headers}
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = " ".join(references)
    if auto_submitted:
        headers["Auto-Submitted"] = auto_submitted
    if idempotency_key:
        headers["X-AgentMail-Idempotency-Key"] = idempotency_key
    text = outgoing.body if outgoing.body is not None else html_to_text(outgoing.html or "")
    email = EmailMultiAlternatives(
        subject=outgoing.subject,
        body=text,
        from_email=formataddr((agent.display_name, agent.address)) if agent.display_name else agent.address,
        to=outgoing.to,
        cc=outgoing.cc,
        bcc=outgoing.bcc,
        reply_to=outgoing.reply_to,
        headers=headers,
    )
    if outgoing.html is not None:
        email.attach_alternative(outgoing.html, "text/html")
    for attachment in attachments:
        with attachment_open(attachment) as fh:
            email.attach(attachment.filename or attachment.id, fh.read(), attachment.content_type)
    if forwarded_raw is not None:
        email.attach("forwarded.eml", BytesParser().parsebytes(forwarded_raw), "message/rfc822")
    # The stubs type message() as Any: it is one of these two.
    mime: SafeMIMEMultipart | SafeMIMEText = email.message()
    return mime.as_bytes()


def _loop_check(*, agent: Agent, thread_id: str, now: dt.datetime) -> None:
    """More than LOOP_MAX_MESSAGES agent-to-agent messages in this thread within the
    window: refuse, so two agents answering each other cannot ping-pong forever."""
    since = now - dt.timedelta(seconds=settings.LOOP_WINDOW_SECONDS)
    rows = (
        Message.objects.for_agent(agent)
        .in_thread(thread_id)
        .filter(received_at__gte=since)
        .order_by("-received_at")
        .values_list("direction", "sender", "to", "cc", "bcc", "received_at")
    )
    between_agents = []
    for direction, sender, to, cc, bcc, received_at in rows:
        if direction == Message.Direction.INBOUND:
            agentish = address_is_local(sender)
        else:
            agentish = any(address_is_local(a) for a in [*to, *cc, *bcc])
        if agentish:
            between_agents.append(received_at)
        if len(between_agents) >= settings.LOOP_MAX_MESSAGES:
            oldest = between_agents[-1]
            retry_after = max(1, int((oldest - since).total_seconds()) + 1)
            raise domain.TooMany(
                "Too many agent-to-agent messages in this thread; this looks like a loop between agents.",
                code="loop_detected",
                details={
                    "thread_id": thread_id,
                    "limit": settings.LOOP_MAX_MESSAGES,
                    "window_seconds": settings.LOOP_WINDOW_SECONDS,
                },
                retry_after=retry_after,
            )


def _outbound_fields(*, agent: Agent, outgoing: Outgoing, raw: bytes, now: dt.datetime) -> dict[str, Any]:
    """The sent message's row as the mailbox shows it: from the agent, already read."""
    return {
        "agent": agent,
        "direction": Message.Direction.OUTBOUND,
        "from_header": formataddr((agent.display_name, agent.address)) if agent.display_name else agent.address,
        "from_name": agent.display_name,
        "sender": agent.address,
        "to": outgoing.to,
        "cc": outgoing.cc,
        "bcc": outgoing.bcc,
        "reply_to": outgoing.reply_to,
        "subject": outgoing.subject,
        "body_preview": make_preview(outgoing.body if outgoing.body is not None else html_to_text(outgoing.html or "")),
        "received_at": now,
        "size": len(raw),
        "is_read": True,
    }


def message_send(
    *,
    agent: Agent,
    outgoing: Outgoing,
    idempotency_key: str = "",
    in_reply_to: str = "",
    references: list[str] | None = None,
    auto_submitted: str = "",
    forwarded_raw: bytes | None = None,
    send_at: dt.datetime | None = None,
) -> Message:
    """Validate, build the raw MIME once, store it, and queue the message for the worker,
    or hold it (approval, ``send_at``, the undo window) as the agent's outbound policy says
    (``mail.outbound.outbound_govern``, the one check of every way out)."""
    _recipients_check(outgoing)
    attachments = (
        attachments_for_send(agent=agent, attachment_ids=outgoing.attachment_ids) if outgoing.attachment_ids else []
    )
    message_id = make_msgid(domain=settings.MAIL_DOMAIN)
    references = (references or [])[-50:]
    raw = mime_build(
        agent=agent,
        outgoing=outgoing,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        auto_submitted=auto_submitted,
        idempotency_key=idempotency_key,
        attachments=attachments,
        forwarded_raw=forwarded_raw,
    )
    _size_check(raw)
    now = timezone.now()
    with transaction.atomic():
        thread_id = thread_id_for(
            agent=agent, message_id=message_id, in_reply_to=in_reply_to, references=references, subject=outgoing.subject
        )
        if any(address_is_local(a) for a in outgoing.recipients):
            _loop_check(agent=agent, thread_id=thread_id, now=now)
        governed = outbound_govern(agent=agent, recipients=outgoing.recipients, send_at=send_at, now=now)
        key, sha = raw_store(raw)
        message = Message.objects.create(
            **_outbound_fields(agent=agent, outgoing=outgoing, raw=raw, now=now),
            status=governed.status,
            send_at=governed.send_at,
            sha256=sha,
            storage_key=key,
            internet_message_id=message_id,
            in_reply_to=in_reply_to,
            references=" ".join(references),
            thread_id=thread_id,
            idempotency_key=idempotency_key,
            auto_submitted=auto_submitted,
        )
        if attachments:
            attachments_mark_claimed(attachments=attachments, message=message)
        threads_refresh(keys=[(agent.pk, thread_id)])
        _start(message)
    return message


def _size_check(raw: bytes) -> None:
    if len(raw) > settings.MAX_MESSAGE_BYTES:
        raise domain.TooLarge(
            f"The message is {len(raw)} bytes; the limit is {settings.MAX_MESSAGE_BYTES}.",
            code="message_too_large",
            details={"size": len(raw), "limit": settings.MAX_MESSAGE_BYTES},
        )


def _start(message: Message) -> None:
    """Queue a message that goes out now; announce one that waits (schedule, approval)."""
    if message.status == Message.Status.QUEUED:
        _queue_dispatch(message.id)
    else:
        governed_announce(message)
        message_contents_queue([message.id])


def _queue_dispatch(message_id: str) -> None:
    # robust: the message is committed and will be sent; a broker hiccup here (or, with
    # eager tasks, a provider error) must not turn the 202 into a 500. The sweep re-queues it.
    transaction.on_commit(lambda: task_queue("mail.tasks.send_message", message_id), robust=True)
    message_contents_queue([message_id])


def _without(addresses: Iterable[str], excluded: set[str]) -> list[str]:
    result: list[str] = []
    seen = set(excluded)
    for address in addresses:
        bare = address_bare(address)
        if bare and bare not in seen:
            seen.add(bare)
            result.append(address)
    return result


def _references_for(original: Message) -> list[str]:
    refs = original.references.split()
    if original.internet_message_id:
        refs.append(original.internet_message_id)
    return refs


def message_reply(
    *,
    agent: Agent,
    original: Message,
    body: str | None = None,
    html: str | None = None,
    reply_all: bool = False,
    attachment_ids: Sequence[str] = (),
    idempotency_key: str = "",
    send_at: dt.datetime | None = None,
) -> Message:
    """Reply (or reply-all) to a message of this agent's mailbox (the fields of
    ``mail.serializers.ReplyInput``; ``attachments`` as ``attachment_ids``)."""
    to, cc = reply_recipients(agent=agent, original=original, reply_all=reply_all)
    outgoing = Outgoing(
        to=addresses_clean("to", to, required=True),
        cc=addresses_clean("cc", cc),
        subject=subject_reply(original.subject),
        body=body,
        html=html,
        attachment_ids=list(dict.fromkeys(attachment_ids)),
    )
    return message_send(
        agent=agent, outgoing=outgoing, idempotency_key=idempotency_key, send_at=send_at, **reply_threading(original)
    )


def reply_recipients(*, agent: Agent, original: Message, reply_all: bool) -> tuple[list[str], list[str]]:
    """To and Cc of a reply (reply-all: everyone but the agent itself)."""
    if original.direction == Message.Direction.OUTBOUND:
        # Following up on our own message goes to the same people again.
        to = list(original.to)
    else:
        to = list(original.reply_to) or [original.from_header or original.sender]
    to = [a for a in _without(to, set()) if not address_is_agents(agent, a)] or (
        [original.sender] if original.sender else []
    )
    cc: list[str] = []
    if reply_all:
        already = {address_bare(a) for a in to}
        cc = [a for a in _without([*original.to, *original.cc], already) if not address_is_agents(agent, a)]
    return to, cc


class ReplyThreading(TypedDict, total=False):
    """The threading arguments of ``message_send`` (a reply has all three; other mail none)."""

    in_reply_to: str
    references: list[str]
    auto_submitted: str


def reply_threading(original: Message) -> ReplyThreading:
    """The threading arguments of ``message_send`` for a reply to ``original``."""
    # A reply to another agent is machine-generated mail to a machine (RFC 3834): say so,
    # so that well-behaved auto-responders on the other side do not answer it.
    between_agents = original.direction == Message.Direction.INBOUND and address_is_local(original.sender)
    return {
        "in_reply_to": original.internet_message_id,
        "references": _references_for(original),
        "auto_submitted": "auto-replied" if between_agents else "",
    }


def message_forward(
    *,
    agent: Agent,
    original: Message,
    to: list[str],
    body: str | None = None,
    idempotency_key: str = "",
    send_at: dt.datetime | None = None,
) -> Message:
    """Forward a message with the original attached as message/rfc822 (quoted when its raw
    MIME is not available); ``body`` is a note above it (``mail.serializers.ForwardInput``)."""
    note = body or ""
    forwarded_raw = raw_read(original.storage_key, archived=original.archived) if original.storage_key else None
    if forwarded_raw is None:
        note = f"{note}\n\n---------- Forwarded message ----------\nFrom: {original.from_header}\nSubject: {original.subject}\n\n{original.body_preview}"
    outgoing = Outgoing(
        to=addresses_clean("to", to, required=True),
        subject=subject_forward(original.subject),
        body=note,
    )
    return message_send(
        agent=agent,
        outgoing=outgoing,
        idempotency_key=idempotency_key,
        references=_references_for(original),
        forwarded_raw=forwarded_raw,
        send_at=send_at,
    )

"""The one ingestion pipeline. Every way mail arrives (SMTP listener, SES over SNS, SQS,
agent-to-agent, backfill) calls ``delivery_accept`` (or ``delivery_accept_stored`` when the
bytes are already in storage), and the worker calls ``delivery_process``.

1. Durable first: the raw bytes are stored and an InboundDelivery row is committed.
2. Only then does the caller acknowledge (SMTP 250, SNS 2xx, SQS delete).
3. ``delivery_process``, queued on commit, parses under limits and indexes one Message per
   recipient agent, routed by the envelope, never by the To: header.

Idempotent at each step: the same external id never makes a second delivery, and
processing a delivery twice never makes a second message.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from assmbl.faults import fault_point
from directory.models import Agent
from directory.services import agent_for_address
from directory.trust import sender_observe, trust_evaluate
from mail.attachments import attachment_parts_store
from mail.models import Attachment, InboundDelivery, Message
from mail.parsing import HashingReader, ParsedMail, parse_mail_stream
from mail.serializers import message_item
from mail.storage import raw_open, raw_store
from mail.threads import thread_id_for
from webhooks.services import event_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    delivery: InboundDelivery
    created: bool


def smtp_external_id(raw: bytes, envelope_recipients: list[str]) -> str:
    """The same bytes to the same recipients are the same delivery: a client that retries
    after losing our 250 (RFC 5321 allows it) does not make a second copy."""
    digest = hashlib.sha256()
    digest.update("\n".join(sorted(r.lower() for r in envelope_recipients)).encode())
    digest.update(b"\0")
    digest.update(raw)
    return f"smtp:{digest.hexdigest()}"


def _queue_processing(delivery_ids: list[str]) -> None:
    from mail.tasks import process_deliveries

    if delivery_ids:
        transaction.on_commit(lambda: process_deliveries.delay(delivery_ids))


@dataclass(frozen=True)
class Arrival:
    """One message as a source hands it over: the bytes and the envelope."""

    raw: bytes
    source: str
    envelope_recipients: list[str]
    envelope_from: str = ""
    external_id: str | None = None
    authentication: dict[str, Any] | None = None


def delivery_accept(
    *,
    raw: bytes,
    source: str,
    envelope_recipients: list[str],
    envelope_from: str = "",
    external_id: str | None = None,
    authentication: dict[str, Any] | None = None,
) -> Accepted:
    """Store the bytes, commit the delivery, queue processing. Safe to call again."""
    arrival = Arrival(raw, source, envelope_recipients, envelope_from, external_id, authentication)
    return deliveries_accept([arrival])[0]


def deliveries_accept(arrivals: list[Arrival]) -> list[Accepted]:
    """Accept several arrivals with one commit and one queued task: the SMTP listener's
    group commit of concurrent sessions, an SQS batch. Returns one Accepted per arrival,
    in order; an arrival whose external id is already held is not stored twice."""
    deliveries = []
    for arrival in arrivals:
        key, sha = raw_store(arrival.raw)
        deliveries.append(
            InboundDelivery(
                source=arrival.source,
                external_id=arrival.external_id or smtp_external_id(arrival.raw, arrival.envelope_recipients),
                storage_key=key,
                size=len(arrival.raw),
                sha256=sha,
                envelope_from=arrival.envelope_from,
                envelope_recipients=arrival.envelope_recipients,
                authentication=arrival.authentication or {},
            )
        )
    accepted = _record(deliveries)
    # Durable now; the caller has not acknowledged yet (RFC 5321: the window where a
    # crash makes the client retry). The reliability tests kill the process here.
    fault_point("ingest.after_accept")
    return accepted


def delivery_accept_stored(
    *,
    storage_key: str,
    source: str,
    external_id: str,
    envelope_recipients: list[str],
    envelope_from: str = "",
    authentication: dict[str, Any] | None = None,
) -> Accepted:
    """For bytes a provider already stored (SES writes to S3): record the pointer only.
    Size and hash are filled in when the worker reads the object."""
    delivery = InboundDelivery(
        source=source,
        external_id=external_id,
        storage_key=storage_key,
        size=0,
        sha256="",
        envelope_from=envelope_from,
        envelope_recipients=envelope_recipients,
        authentication=authentication or {},
    )
    return _record([delivery])[0]


def _record(deliveries: list[InboundDelivery]) -> list[Accepted]:
    """Insert what is new in one statement; redeliveries (SNS/SQS at-least-once, an SMTP
    retry, the same bytes twice in one batch) resolve to the delivery already held."""
    with transaction.atomic():
        InboundDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        held = InboundDelivery.objects.in_bulk([d.external_id for d in deliveries], field_name="external_id")
        created_ids = {d.id for d in deliveries} & {d.id for d in held.values()}
        _queue_processing(sorted(created_ids))
    return [Accepted(held[d.external_id], held[d.external_id].id == d.id) for d in deliveries]


def recipient_agents(envelope_recipients: list[str]) -> tuple[list[Agent], list[str]]:
    agents: dict[int, Agent] = {}
    unknown = []
    for address in envelope_recipients:
        agent = agent_for_address(address)
        if agent is None:
            unknown.append(address)
        else:
            agents.setdefault(agent.pk, agent)
    return list(agents.values()), unknown


def delivery_process(delivery_id: str) -> InboundDelivery:
    """Parse and index a stored delivery. Idempotent; safe to run twice or concurrently."""
    delivery = InboundDelivery.objects.get(pk=delivery_id)
    if delivery.status == InboundDelivery.Status.PROCESSED:
        return delivery
    # Streamed from storage into the parser: a large message is never held whole beside
    # its parse tree. Size and hash (unknown for objects SES stored) come in the same pass.
    with raw_open(delivery.storage_key) as stream:
        reader = HashingReader(stream)
        parsed = parse_mail_stream(reader)
        reader.drain()
    if not delivery.sha256:
        delivery.sha256 = reader.sha256.hexdigest()
        delivery.size = reader.size
    agents, unknown = recipient_agents(delivery.envelope_recipients)
    outcome: dict[str, str] = {address.lower(): "unknown_recipient" for address in unknown}
    for agent in agents:
        outcome[agent.agent_id] = index_for_agent(delivery=delivery, agent=agent, parsed=parsed)
    InboundDelivery.objects.filter(pk=delivery.pk).update(
        status=InboundDelivery.Status.PROCESSED,
        processed_at=timezone.now(),
        outcome=outcome,
        sha256=delivery.sha256,
        size=delivery.size,
        attempts=delivery.attempts + 1,
        error="",
    )
    delivery.refresh_from_db()
    return delivery


def deliveries_process(delivery_ids: list[str]) -> list[InboundDelivery]:
    return [delivery_process(delivery_id) for delivery_id in delivery_ids]


def index_for_agent(*, delivery: InboundDelivery, agent: Agent, parsed: ParsedMail) -> str:
    """Index one delivery into one agent's mailbox; returns the outcome word."""
    if Message.objects.filter(delivery=delivery, agent=agent).exists():
        return "indexed"
    if parsed.idempotency_key and Message.objects.for_agent(agent).inbound().filter(
        idempotency_key=parsed.idempotency_key
    ).exists():
        return "duplicate"
    decision = trust_evaluate(agent=agent, sender=parsed.sender, authentication=delivery.authentication)
    quarantined = bool(parsed.quarantine_reason)
    # Parts go to storage once per delivery (content-addressed), outside the transaction,
    # so that a download streams a file instead of re-parsing the raw MIME in the web process.
    attachment_parts_store(parsed=parsed)
    disposition = Message.Disposition.QUARANTINED if quarantined else decision.disposition
    try:
        with transaction.atomic():
            message = Message.objects.create(
                agent=agent,
                direction=Message.Direction.INBOUND,
                disposition=disposition,
                status=Message.Status.RECEIVED,
                delivery=delivery,
                from_header=parsed.from_header,
                from_name=parsed.from_name,
                sender=parsed.sender,
                to=parsed.to,
                cc=parsed.cc,
                reply_to=parsed.reply_to,
                subject=parsed.subject,
                body_preview=parsed.body_preview,
                received_at=delivery.received_at,
                size=delivery.size,
                sha256=delivery.sha256,
                storage_key=delivery.storage_key,
                internet_message_id=parsed.message_id,
                in_reply_to=parsed.in_reply_to,
                references=" ".join(parsed.references),
                thread_id=thread_id_for(
                    agent=agent,
                    message_id=parsed.message_id,
                    in_reply_to=parsed.in_reply_to,
                    references=parsed.references,
                    subject=parsed.subject,
                ),
                idempotency_key=parsed.idempotency_key,
                auto_submitted=parsed.auto_submitted,
                sender_verified=decision.sender_verified and not quarantined,
                authentication=delivery.authentication,
                parse_status=parsed.parse_status,
                quarantine_reason=parsed.quarantine_reason or decision.reason,
            )
            Attachment.objects.bulk_create(
                Attachment(
                    agent=agent,
                    message=message,
                    kind=Attachment.Kind.INBOUND,
                    state=Attachment.State.STORED,
                    filename=att.filename,
                    content_type=att.content_type,
                    size=att.size,
                    content_id=att.content_id,
                    disposition=att.disposition,
                    part_index=att.part_index,
                    sha256=att.sha256,
                    storage_key=att.storage_key,
                )
                for att in parsed.attachments
            )
            sender_observe(agent=agent, message=message, authentication=delivery.authentication)
            message_received(message)
    except IntegrityError:
        # A concurrent run indexed it first, or the idempotency key raced: either way the
        # message exists once and its notification was emitted once.
        if Message.objects.filter(delivery=delivery, agent=agent).exists():
            return "indexed"
        return "duplicate"
    return "indexed" if disposition == Message.Disposition.INBOX else disposition


def message_received(message: Message) -> None:
    """The seam where 'a message arrived' becomes an event (webhooks, long-poll).

    Held and blocked mail is for staff, not the agent, so it makes no event.
    """
    if message.disposition == Message.Disposition.INBOX:
        event_record(agent=message.agent, type="message.received", payload=message_item(message))
    elif message.disposition == Message.Disposition.QUARANTINED:
        event_record(agent=message.agent, type="message.quarantined", payload=message_item(message))

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

import datetime
import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from assmbl.celery import task_queue
from assmbl.faults import fault_point
from directory.models import Agent
from mail import authn
from mail.addresses import agents_for_addresses
from mail.attachments import attachment_parts_store
from mail.message_content import message_contents_queue, messages_hold_flagged
from mail.models import Attachment, InboundDelivery, Message
from mail.parsing import HashingReader, ParsedMail, parse_mail_stream
from mail.release import messages_received
from mail.storage import raw_discard, raw_open, raw_sync, raws_store
from mail.threads import ThreadLinks, threads_refresh
from mail.trust import SenderFacts, senders_observe, trust_evaluate

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


def deliveries_queue(delivery_ids: list[str]) -> None:
    """Queue one processing task for accepted deliveries (after their commit)."""
    if delivery_ids:
        task_queue("mail.tasks.process_deliveries", delivery_ids)


@dataclass(frozen=True)
class Arrival:
    """One message as a source hands it over: the bytes and the envelope."""

    raw: bytes
    source: str
    envelope_recipients: list[str]
    envelope_from: str = ""
    external_id: str | None = None
    authentication: dict[str, Any] | None = None
    # (key, sha256) when the caller already wrote the bytes with raw_store_early (the SMTP
    # listener does on S3, in parallel threads, before its group commit syncs them).
    stored: tuple[str, str] | None = None


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


def deliveries_accept(arrivals: list[Arrival], *, queue: bool = True) -> list[Accepted]:
    """Accept several arrivals with one commit and one queued task: the SMTP listener's
    group commit of concurrent sessions, an SQS batch. Returns one Accepted per arrival,
    in order; an arrival whose external id is already held is not stored twice.

    ``queue=False``: the caller queues ``accepted_pending(...)`` itself with
    ``deliveries_queue`` (the listener gathers several commits into one task)."""
    deliveries = []
    # What the caller has not stored yet goes to storage as one batch (one pack file in
    # local storage, mail.packs).
    written = iter(raws_store([a.raw for a in arrivals if a.stored is None]))
    for arrival in arrivals:
        key, sha = arrival.stored or next(written)
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
    # One sync for the batch, before the commit that promises its bytes.
    raw_sync(list(dict.fromkeys(d.storage_key for d in deliveries)))
    accepted = _record(deliveries, queue=queue)
    for delivery, one in zip(deliveries, accepted, strict=True):
        if not one.created and one.delivery.storage_key != delivery.storage_key:
            # A redelivery: the delivery already held has its own copy of these bytes.
            # Best effort: what is committed stands, and a stray record harms no one.
            try:
                raw_discard(delivery.storage_key)
            except OSError:
                log.warning("could not discard the unused copy %s", delivery.storage_key, exc_info=True)
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


def _record(deliveries: list[InboundDelivery], *, queue: bool = True) -> list[Accepted]:
    """Insert what is new in one statement; redeliveries (SNS/SQS at-least-once, an SMTP
    retry, the same bytes twice in one batch) resolve to the delivery already held."""
    with transaction.atomic():
        _external_ids_lock(deliveries)
        InboundDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        # Which row holds each external id: one of ours, inserted just now and complete in
        # memory, or one held before, read whole (the listener's group commit reads back
        # two columns a row, not every column of its own rows).
        holder = dict(
            InboundDelivery.objects.filter(external_id__in=[d.external_id for d in deliveries]).values_list(
                "external_id", "id"
            )
        )
        rows = {d.id: d for d in deliveries}
        rows |= InboundDelivery.objects.in_bulk({pk for pk in holder.values() if pk not in rows})
        accepted = [Accepted(rows[holder[d.external_id]], holder[d.external_id] == d.id) for d in deliveries]
        pending = accepted_pending(accepted)
        if queue and pending:
            transaction.on_commit(lambda: deliveries_queue(pending))
    return accepted


def _external_ids_lock(deliveries: list[InboundDelivery]) -> None:
    """Serialise accepts that share external ids (PostgreSQL): two accepts of the same
    arrivals (an at-least-once source, a client retrying on a second connection) insert
    them in arrival order, each row waiting on the other's uncommitted copy, so each can
    hold an id the other waits for (a deadlock). Transaction-scoped advisory locks taken
    in a fixed order make the later one wait at the first id they share, holding none the
    other needs. The rows keep arrival order, which is their received_at order. One id is
    never part of a cycle: its accept waits holding nothing else."""
    ids = {d.external_id for d in deliveries}
    if connection.vendor != "postgresql" or len(ids) < 2:
        return
    locks = sorted(
        int.from_bytes(hashlib.blake2b(f"delivery:{e}".encode(), digest_size=8).digest(), "big", signed=True)
        for e in ids
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM UNNEST(%s::bigint[]) AS k", [locks])


def accepted_pending(accepted: list[Accepted]) -> list[str]:
    """The deliveries to queue after an accept: the new ones, and any redelivered one not
    processed yet (its first task may have died with the process that accepted it, before
    it was queued). Processing is idempotent, so a spare task is harmless."""
    return sorted({a.delivery.id for a in accepted if a.delivery.status != InboundDelivery.Status.PROCESSED})


def delivery_process(delivery_id: str) -> InboundDelivery:
    """Parse and index one stored delivery (a batch of one)."""
    processed = deliveries_process([delivery_id])
    if not processed:
        raise InboundDelivery.DoesNotExist(delivery_id)
    return processed[0]


@dataclass
class _Unit:
    """One delivery for one recipient agent: what becomes one Message."""

    delivery: InboundDelivery
    agent: Agent
    parsed: ParsedMail
    outcome: str = ""
    # Whose idempotency key the mail carries (idempotency_scope), and the message that
    # already holds it from that sender, when this one is a duplicate.
    scope: str = ""
    duplicate_of: str = ""

    @property
    def scoped_key(self) -> tuple[int, str, str] | None:
        """(agent, sender, key) when the key deduplicates: a key and a sender to own it."""
        if not (self.scope and self.parsed.idempotency_key):
            return None
        return (self.agent.pk, self.scope, self.parsed.idempotency_key)


def deliveries_process(delivery_ids: list[str]) -> list[InboundDelivery]:
    """Parse and index stored deliveries. Idempotent; safe to run twice or concurrently.

    The batch shares its queries (recipients, trust facts, thread links, existing messages)
    and commits once: a few statements per batch instead of a dozen per message, which is
    what makes ingestion keep up with the listener (bench/ingest.py).
    """
    deliveries = [
        d
        for d in InboundDelivery.objects.filter(pk__in=delivery_ids).order_by("received_at", "id")
        if d.status != InboundDelivery.Status.PROCESSED
    ]
    try:
        return _process(deliveries)
    except Exception:
        if len(deliveries) <= 1:
            raise
        # One delivery's fault (unreadable bytes, a bug its content triggers) must not hold
        # back its batch-mates, which would otherwise be retried and re-batched with it
        # forever: each is processed alone, and the first failure goes to the task's retry.
        log.warning("a batch of %d deliveries failed; processing them one at a time", len(deliveries), exc_info=True)
    processed: list[InboundDelivery] = []
    failure: Exception | None = None
    for delivery in deliveries:
        try:
            processed += deliveries_process([delivery.pk])
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return processed


def _process(deliveries: list[InboundDelivery]) -> list[InboundDelivery]:
    hashed = {d.pk for d in deliveries if not d.sha256}
    parsed_of = {delivery.pk: _read(delivery) for delivery in deliveries}
    units: list[_Unit] = []
    agents = agents_for_addresses([a for d in deliveries for a in d.envelope_recipients])
    outcomes: dict[str, dict[str, str]] = {}
    for delivery in deliveries:
        outcome: dict[str, str] = {}
        outcomes[delivery.pk] = outcome
        seen: set[int] = set()
        for address in delivery.envelope_recipients:
            agent = agents[address]
            if agent is None:
                outcome[address.lower()] = "unknown_recipient"
            elif agent.pk not in seen:
                seen.add(agent.pk)
                units.append(_Unit(delivery, agent, parsed_of[delivery.pk]))
    for parsed in parsed_of.values():
        # Parts go to storage once per delivery (content-addressed), outside the transaction,
        # so that a download streams a file instead of re-parsing the raw MIME on the web.
        attachment_parts_store(parsed=parsed)
    try:
        with transaction.atomic():
            _index(units)
            _mark_processed(deliveries, outcomes, units, hashed)
    except IntegrityError:
        # A concurrent run indexed some of these first, or an idempotency key raced: index
        # each unit alone, so each conflict resolves to its own outcome.
        for unit in units:
            try:
                with transaction.atomic():
                    _index([unit])
            except IntegrityError:
                exists = Message.objects.filter(delivery=unit.delivery, agent=unit.agent).exists()
                unit.outcome = "indexed" if exists else "duplicate"
        with transaction.atomic():
            _mark_processed(deliveries, outcomes, units, hashed)
    return deliveries


def _read(delivery: InboundDelivery) -> ParsedMail:
    # Streamed from storage into the parser: a large message is never held whole beside
    # its parse tree. Size and hash (unknown for objects SES stored) come in the same pass.
    with raw_open(delivery.storage_key) as stream:
        if delivery.sha256:  # hashed when accepted
            return parse_mail_stream(stream)
        reader = HashingReader(stream)
        parsed = parse_mail_stream(reader)
        reader.drain()
    delivery.sha256 = reader.sha256.hexdigest()
    delivery.size = reader.size
    return parsed


def _mark_processed(
    deliveries: list[InboundDelivery], outcomes: dict[str, dict[str, str]], units: list[_Unit], hashed: set[str]
) -> None:
    """``hashed``: the deliveries whose size and hash were learnt by reading them now."""
    for unit in units:
        outcomes[unit.delivery.pk][unit.agent.agent_id] = unit.outcome
    now = timezone.now()
    for delivery in deliveries:
        delivery.status = InboundDelivery.Status.PROCESSED
        delivery.processed_at = now
        delivery.outcome = outcomes[delivery.pk]
        delivery.error = ""
        delivery.attempts += 1
    if connection.vendor == "postgresql":
        _mark_processed_postgres(deliveries, now)
        return
    # One UPDATE per distinct outcome, not bulk_update's CASE per row, which costs more to
    # build than the rest of the batch. (Embedded mode: batches are small.)
    groups: dict[tuple[str, int], list[InboundDelivery]] = defaultdict(list)
    for delivery in deliveries:
        groups[(json.dumps(delivery.outcome, sort_keys=True), delivery.attempts)].append(delivery)
    for (_, attempts), group in groups.items():
        InboundDelivery.objects.filter(pk__in=[d.pk for d in group]).update(
            status=InboundDelivery.Status.PROCESSED,
            processed_at=now,
            outcome=group[0].outcome,
            attempts=attempts,
            error="",
        )
    for delivery in deliveries:
        if delivery.pk in hashed:
            InboundDelivery.objects.filter(pk=delivery.pk).update(sha256=delivery.sha256, size=delivery.size)


def _mark_processed_postgres(deliveries: list[InboundDelivery], now: datetime.datetime) -> None:
    """The whole batch in one UPDATE from arrays. An outcome names its recipients, so a
    batch spread over many agents has as many distinct outcomes as deliveries, and one
    UPDATE per outcome cost 40 % more CPU per mail (bench/ingest.py --agents 50); the
    size and hash learnt from an SES object ride along instead of an UPDATE each."""
    meta = InboundDelivery._meta
    table = connection.ops.quote_name(meta.db_table)
    column = {f.name: connection.ops.quote_name(f.column) for f in meta.concrete_fields}
    sql = (
        f"UPDATE {table} AS d SET {column['status']} = %s, {column['processed_at']} = %s, {column['error']} = '', "
        f"{column['outcome']} = v.outcome, {column['attempts']} = v.attempts, "
        f"{column['sha256']} = v.sha256, {column['size']} = v.size "
        "FROM UNNEST(%s::varchar[], %s::jsonb[], %s::integer[], %s::varchar[], %s::bigint[]) "
        f"AS v(id, outcome, attempts, sha256, size) WHERE d.{column['id']} = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                InboundDelivery.Status.PROCESSED,
                now,
                [d.pk for d in deliveries],
                [json.dumps(d.outcome) for d in deliveries],
                [d.attempts for d in deliveries],
                [d.sha256 for d in deliveries],
                [d.size for d in deliveries],
            ],
        )


def _received_keys(units: list[_Unit], agent_ids: set[int]) -> dict[tuple[int, str, str], str]:
    """Which of the units' scoped idempotency keys the mailboxes hold already (key → the
    message's id): one query a batch, on the index of mail_message_inbound_sender_key."""
    scoped = {key for u in units if (key := u.scoped_key)}
    if not scoped:
        return {}
    return {
        (agent_pk, sender, key): pk
        for agent_pk, sender, key, pk in Message.objects.inbound()
        .filter(
            agent_id__in=agent_ids,
            idempotency_sender__in={sender for _, sender, _ in scoped},
            idempotency_key__in={key for _, _, key in scoped},
        )
        .exclude(idempotency_key="")
        .exclude(idempotency_sender="")
        .order_by()
        .values_list("agent_id", "idempotency_sender", "idempotency_key", "id")
    }


def _attachments_for(units: list[_Unit], messages: list[Message]) -> dict[str, list[Attachment]]:
    """The attachment rows of the indexed messages (their parts are stored already), by
    message id."""
    return {
        message.id: [
            Attachment(
                agent=unit.agent,
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
            for att in unit.parsed.attachments
        ]
        for unit, message in zip(units, messages, strict=True)
    }


def _index(units: list[_Unit]) -> None:
    """Index units into their agents' mailboxes, in the caller's transaction; sets each
    unit's outcome word. Every query here is per batch, not per unit."""
    if not units:
        return
    delivery_ids = {u.delivery.pk for u in units}
    agent_ids = {u.agent.pk for u in units}
    indexed = set(
        Message.objects.filter(delivery_id__in=delivery_ids, agent_id__in=agent_ids).values_list(
            "delivery_id", "agent_id"
        )
    )
    for unit in units:
        unit.scope = idempotency_scope(delivery=unit.delivery, sender=unit.parsed.sender)
    received = _received_keys(units, agent_ids)
    todo = []
    for unit in units:
        if (unit.delivery.pk, unit.agent.pk) in indexed:
            unit.outcome = "indexed"
        else:
            todo.append(unit)
    if not todo:
        return
    facts = SenderFacts([(u.agent, u.parsed.sender) for u in todo])
    links = ThreadLinks([(u.agent.pk, u.parsed.message_id, [u.parsed.in_reply_to, *u.parsed.references]) for u in todo])
    messages = []
    for unit in todo:
        key = unit.scoped_key
        unit.duplicate_of = received.get(key, "") if key else ""
        message = _message_for(unit, facts, links)
        if key and not unit.duplicate_of:
            received[key] = message.id
        if not unit.duplicate_of:
            links.add(message)
        messages.append(message)
    Message.objects.bulk_create(messages)
    attachments_of = _attachments_for(todo, messages)
    Attachment.objects.bulk_create([a for attachments in attachments_of.values() for a in attachments])
    # A duplicate is kept for staff only: it counts for no sender and answers no challenge.
    senders_observe(messages=[m for m in messages if m.disposition != Message.Disposition.DUPLICATE])
    # Before the event: a message the agent's hold_on holds is never announced to it.
    held = messages_hold_flagged(messages=messages)
    for unit, message in zip(todo, messages, strict=True):
        if message.pk in held:
            unit.outcome = message.disposition
    messages_received(messages, attachments_of=attachments_of)
    # Once for the batch, after the events (which may set a BodyPreview from the content).
    visible = [m for m in messages if m.disposition == Message.Disposition.INBOX]
    threads_refresh(
        keys={(m.agent_id, m.thread_id) for m in visible},
        unlabelled=[m.id for m in messages],
        minted=[m for m in visible if m.thread_id in links.minted],
    )
    message_contents_queue([m.id for m in messages if m.disposition != Message.Disposition.DUPLICATE])


def idempotency_scope(*, delivery: InboundDelivery, sender: str) -> str:
    """Whose X-AgentMail-Idempotency-Key a received mail carries: the sending agent for
    mail from this service's own agents (the envelope sender our backend wrote), the From
    address when the mail is authenticated for it (SPF or DKIM aligned, one From), else
    "". Anyone can write any key into a mail, and agents' mail shows its key to its
    recipients: a key deduplicates only mail from the same authenticated sender, so a
    stranger cannot make an agent's later mail vanish by sending its key first."""
    if delivery.authentication.get("internal"):
        return delivery.envelope_from.strip().lower()[:320]
    if sender and authn.aligned_for(delivery.authentication, sender):
        return sender
    return ""


def _message_for(unit: _Unit, facts: SenderFacts, links: ThreadLinks) -> Message:
    delivery, agent, parsed = unit.delivery, unit.agent, unit.parsed
    decision = trust_evaluate(agent=agent, sender=parsed.sender, authentication=delivery.authentication, facts=facts)
    quarantined = bool(parsed.quarantine_reason)
    disposition = Message.Disposition.QUARANTINED if quarantined else decision.disposition
    reason = parsed.quarantine_reason or decision.reason
    if unit.duplicate_of:
        # Kept, out of the inbox and without an event (API.md: Idempotency), where staff
        # see it among the messages, as they see held and blocked mail.
        disposition = Message.Disposition.DUPLICATE
        reason = (
            f"X-AgentMail-Idempotency-Key {parsed.idempotency_key!r} from {unit.scope} "
            f"was already received as {unit.duplicate_of}"
        )
    unit.outcome = "indexed" if disposition == Message.Disposition.INBOX else disposition
    return Message(
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
        thread_id=links.thread_for(
            agent=agent,
            message_id=parsed.message_id,
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            subject=parsed.subject,
        ),
        idempotency_key=parsed.idempotency_key,
        # A duplicate leaves the key to the message that holds it.
        idempotency_sender="" if unit.duplicate_of else unit.scope,
        auto_submitted=parsed.auto_submitted,
        sender_verified=decision.sender_verified and not quarantined,
        # The verdicts as they apply to this From address (what the API shows).
        authentication=(
            authn.authentication_for_sender(delivery.authentication, parsed.sender)
            if parsed.sender
            else delivery.authentication
        ),
        parse_status=parsed.parse_status,
        quarantine_reason=reason,
    )

"""Agents' mail: deliveries (what arrived), messages (the index), labels, attachments,
and the idempotency records of sends."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Concat, Replace, Upper

from assmbl.ids import PrefixedId
from directory.models import Account, Agent
from mail.querysets import MessageLabelQuerySet, MessageQuerySet, ThreadQuerySet
from mail.search import SEARCH_COLUMNS, SEARCH_SEPARATOR, SEPARATOR_STANDIN


class InboundDelivery(models.Model):
    """One raw message as it arrived, stored before anything else happens.

    ``external_id`` is what makes redelivery harmless: SES message id for SNS and SQS,
    a hash of envelope + bytes for SMTP, the outbound message id for agent-to-agent mail.
    """

    class Source(models.TextChoices):
        SMTP = "smtp", "Local SMTP listener"
        SES = "ses", "Amazon SES (SNS)"
        SQS = "sqs", "Amazon SES (SQS)"
        INTERNAL = "internal", "Agent to agent"
        BACKFILL = "backfill", "Backfill from storage"

    class Status(models.TextChoices):
        STORED = "stored", "Stored, waiting to be processed"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Processing failed (will be retried)"

    id = models.CharField(primary_key=True, max_length=40, default=PrefixedId("dlv"), editable=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(max_length=200, unique=True)
    storage_key = models.CharField(max_length=300)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    envelope_from = models.CharField(max_length=320, blank=True)
    envelope_recipients = models.JSONField(default=list)
    # Verdicts as reported by SES or checked locally: {"spf": "pass", "dkim": "fail", ...}
    authentication = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STORED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Per recipient agent: "indexed", "duplicate", "unknown_recipient", "blocked", ...
    outcome = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "inbound deliveries"
        indexes = [
            # The sweeper re-queues deliveries still STORED after a crash.
            models.Index(fields=["status", "received_at"], name="mail_delivery_status_received"),
            # backfill skips objects some delivery already points at.
            models.Index(fields=["storage_key"], name="mail_delivery_storage_key"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.external_id}"


def _search_part(column: str) -> Replace:
    """``column`` as search_upper holds it: upper-cased, its own separators as the stand-in."""
    return Replace(Upper(column), Value(SEARCH_SEPARATOR), Value(SEPARATOR_STANDIN), output_field=models.TextField())


class Message(models.Model):
    """One message in one agent's mailbox: the inbox item of the API."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Disposition(models.TextChoices):
        INBOX = "inbox", "Inbox"
        QUARANTINED = "quarantined", "Quarantined (could not be parsed safely)"
        HELD = "held", "Held for moderation (policy)"
        BLOCKED = "blocked", "Blocked sender"
        DUPLICATE = "duplicate", "Duplicate (its idempotency key was already received)"

    class ParseStatus(models.TextChoices):
        OK = "ok", "Parsed"
        DEFECTIVE = "defective", "Parsed with defects"
        FAILED = "failed", "Could not be parsed"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        SCHEDULED = "scheduled", "Scheduled (waits for send_at)"
        PENDING_APPROVAL = "pending_approval", "Awaiting approval"
        CANCELED = "canceled", "Canceled (never sent)"
        REJECTED = "rejected", "Rejected by a reviewer (never sent)"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        FAILED = "failed", "Failed"

    id = models.CharField(primary_key=True, max_length=40, default=PrefixedId("msg"), editable=False)
    # No index of its own: every index below starts with the agent (ingest maintains
    # each index on every insert).
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="messages", db_index=False)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    disposition = models.CharField(max_length=12, choices=Disposition.choices, default=Disposition.INBOX)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    # Looked up through mail_message_delivery_agent (delivery first), not an index of its own.
    delivery = models.ForeignKey(
        InboundDelivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages", db_index=False
    )

    from_header = models.TextField(blank=True)
    from_name = models.CharField(max_length=300, blank=True)
    sender = models.CharField(max_length=320, blank=True)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list)
    bcc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    body_preview = models.CharField(max_length=256, blank=True)

    # The searched columns (MessageQuerySet.search) upper-cased once at write time and
    # joined by SEARCH_SEPARATOR (a column's own separators written as SEPARATOR_STANDIN,
    # so that each row holds exactly three: mail.search._AT_COLUMNS): one LIKE a row instead
    # of four UPPER()s when the planner walks the mailbox, and one pg_trgm index
    # (mail_message_search_trgm, PostgreSQL only, made by the migration that adds this
    # column) when it asks the index for a rare term. Which of the two the planner does
    # follows from this column's histogram, finer than the default
    # (mail/migrations/0021_search_upper_exact_separators.py).
    search_upper = models.GeneratedField(
        expression=Concat(
            *(
                part
                for i, column in enumerate(SEARCH_COLUMNS)
                for part in ((Value(SEARCH_SEPARATOR),) if i else ()) + (_search_part(column),)
            ),
            output_field=models.TextField(),
        ),
        output_field=models.TextField(),
        db_persist=True,
    )

    received_at = models.DateTimeField()
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=300, blank=True)

    internet_message_id = models.CharField(max_length=998, blank=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    thread_id = models.CharField(max_length=40, blank=True)
    # X-AgentMail-Idempotency-Key of inbound mail, or the send's key.
    idempotency_key = models.CharField(max_length=255, blank=True)
    # Inbound: whose key it is, the authenticated sender (mail.ingest.idempotency_scope);
    # empty when the sender is not authenticated, and then the key deduplicates nothing.
    idempotency_sender = models.CharField(max_length=320, blank=True)
    auto_submitted = models.CharField(max_length=40, blank=True)

    is_read = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    sender_verified = models.BooleanField(default=False)
    authentication = models.JSONField(default=dict, blank=True)
    parse_status = models.CharField(max_length=10, choices=ParseStatus.choices, default=ParseStatus.OK)
    quarantine_reason = models.TextField(blank=True)

    # Outbound: what the provider said.
    provider_message_id = models.CharField(max_length=300, blank=True)
    status_detail = models.TextField(blank=True)
    # Outbound, scheduled (send_at or the agent's undo window): when the release claims it.
    send_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            # Processing a delivery twice (a retried task) never makes a second inbox item.
            models.UniqueConstraint(
                fields=["delivery", "agent"], condition=Q(delivery__isnull=False), name="mail_message_delivery_agent"
            ),
            # Inbound X-AgentMail-Idempotency-Key: the second message with a key this agent
            # already received from the same authenticated sender is a duplicate. Also the
            # index of ingest's one duplicate lookup a batch.
            models.UniqueConstraint(
                fields=["agent", "idempotency_sender", "idempotency_key"],
                condition=Q(direction="inbound") & ~Q(idempotency_key="") & ~Q(idempotency_sender=""),
                name="mail_message_inbound_sender_key",
            ),
        ]
        indexes = [
            # GET /v1/inbox: agent's visible mail in (received_at, id) keyset order.
            models.Index(
                fields=["agent", "direction", "disposition", "archived", "received_at", "id"],
                name="mail_message_agent_inbox",
            ),
            # No index names is_read, in its columns or its predicate: the unread mail's
            # index is MessageUnread's, so that flipping the read state leaves every index
            # entry of the row as it was and the UPDATE can be HOT (docs/decisions/0042).
            # The thread lookup of every ingest: did a reply naming this Message-ID arrive
            # first? (mail.threads.thread_id_for; it scanned the mailbox without this.)
            models.Index(fields=["agent", "in_reply_to"], name="mail_message_agent_inreplyto"),
            # GET /v1/threads/{id} and threading lookups by Message-ID.
            models.Index(fields=["agent", "thread_id", "received_at"], name="mail_message_agent_thread"),
            models.Index(fields=["agent", "internet_message_id"], name="mail_message_agent_msgid"),
            # Outbound tracking events find the message by the provider's id.
            models.Index(fields=["provider_message_id"], name="mail_message_provider_id"),
            # The admin dashboard's mail-per-day chart and the received_at filter.
            models.Index(fields=["received_at"], name="mail_message_received"),
            # The moderation queue and dashboard counts of held/quarantined/blocked mail.
            models.Index(
                fields=["disposition", "received_at", "id"],
                condition=~Q(disposition="inbox"),
                name="mail_message_not_inbox",
            ),
            # Deleting raw objects checks whether another message still points at them.
            models.Index(fields=["storage_key"], name="mail_message_storage_key"),
            # q's larger:/smaller: (mail.search): one mailbox's messages by size, not a
            # walk of the whole mailbox for a size few messages have.
            models.Index(fields=["agent", "size"], name="mail_message_agent_size"),
            # The release of scheduled mail (mail.outbound.messages_release_due) and the
            # admin's "Outbound awaiting approval": both read a few rows of one status.
            models.Index(
                fields=["status", "send_at"],
                condition=Q(status__in=["scheduled", "pending_approval"]),
                name="mail_message_governed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.subject[:60]!r}"

    @property
    def label_names(self) -> list[str]:
        return sorted(label.name for label in self.labels.all())


class MessageLabel(models.Model):
    # No index of its own: mail_label_message_name starts with the message, and serves every
    # lookup by message (an item's labels, a batch's, the cascade of a delete); each index
    # is one more entry to write for every label added.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="labels", db_index=False)
    name = models.CharField(max_length=64)
    # Copies of the message's agent, received_at and archived, so that
    # GET /v1/inbox?label=... walks one mailbox's label rows in listing order, skipping
    # archived ones, instead of walking the whole inbox (MessageQuerySet.with_label).
    # agent and received_at never change. MessageLabelQuerySet.copy_message_keys is the one
    # writer of the three: on every insert, and for services.message_archive_set (the one
    # writer of Message.archived) in the same transaction.
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+", db_index=False)
    received_at = models.DateTimeField()
    archived = models.BooleanField(default=False)

    objects = MessageLabelQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "name"], name="mail_label_message_name")]
        indexes = [
            # GET /v1/inbox?label=...: one mailbox's messages carrying a label, in listing
            # order; the partial one skips archived mail (a label on 10k archived messages
            # and no visible one: 0.1 ms instead of 10k probes of mail_message).
            models.Index(
                fields=["agent", "name", "received_at", "message"],
                condition=Q(archived=False),
                name="mail_label_agent_name_visible",
            ),
            models.Index(fields=["agent", "name", "received_at", "message"], name="mail_label_agent_name_received"),
            # The admin's label filter across all mailboxes.
            models.Index(fields=["name", "message"], name="mail_label_name_message"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding:
            type(self).objects.copy_message_keys([self])
        super().save(*args, **kwargs)


class MessageUnread(models.Model):
    """One row per unread message an agent sees in its inbox (inbound, disposition inbox,
    not archived, not read): the index of ``GET /v1/inbox?is_read=false`` and of the unread
    count, kept out of mail_message so that a change of ``is_read`` writes no index entry
    of the message's row (docs/decisions/0042-unread-table.md).

    The one writer is the database: triggers on mail_message made by the migration that
    creates this table (mail/migrations/0022_message_unread.py), after each INSERT, DELETE
    and UPDATE of the columns that decide it, so every path (ingest's bulk_create, the
    services' .update(), the admin, the release from hold, a cascade) keeps it right. No
    Python code writes it; hence DO_NOTHING below: the trigger deletes the row with its
    message, in the same statement.
    """

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.DO_NOTHING, related_name="unread_row")
    # Copies of the message's, which never change (the triggers copy them again if they do).
    agent = models.ForeignKey(Agent, on_delete=models.DO_NOTHING, related_name="+", db_index=False)
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            # GET /v1/inbox?is_read=false walks it in listing order from the cursor, and the
            # unread count is an index-only count of one mailbox's entries.
            models.Index(fields=["agent", "received_at", "message"], name="mail_unread_agent_received"),
        ]

    def __str__(self) -> str:
        return f"unread {self.message_id}"


class Thread(models.Model):
    """One conversation of one agent's mailbox as ``GET /v1/threads`` lists it: a summary of
    the thread's messages that the agent sees (outbound, and inbound in the inbox), written
    by ``mail.threads.threads_refresh`` in the transaction of every change to them (ingest,
    send, release, labels, read, archive, delete), never computed by a read."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="threads", db_index=False)
    thread_id = models.CharField(max_length=40)
    subject = models.TextField(blank=True)
    participants = models.JSONField(default=list)
    labels = models.JSONField(default=list)
    message_count = models.PositiveIntegerField(default=0)
    # Unread inbound messages not archived: the inbox's unread count, per thread.
    unread_count = models.PositiveIntegerField(default=0)
    # Every message archived: listed only with include_archived=true.
    archived = models.BooleanField(default=False)
    first_message_at = models.DateTimeField()
    last_message_at = models.DateTimeField()
    last_message_id = models.CharField(max_length=40)
    last_message_preview = models.CharField(max_length=256, blank=True)

    objects = ThreadQuerySet.as_manager()

    class Meta:
        constraints = [
            # One row per conversation; also the index of threads_refresh's upsert and of
            # the thread endpoints' lookup.
            models.UniqueConstraint(fields=["agent", "thread_id"], name="mail_thread_agent_thread"),
        ]
        indexes = [
            # GET /v1/threads: one mailbox's threads with a message not archived, newest
            # activity first (walked backwards from the cursor).
            models.Index(
                fields=["agent", "archived", "last_message_at", "thread_id"], name="mail_thread_agent_activity"
            ),
            # GET /v1/threads?include_archived=true.
            models.Index(fields=["agent", "last_message_at", "thread_id"], name="mail_thread_agent_all"),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id} {self.subject[:60]!r}"


class Attachment(models.Model):
    """A part of an inbound message, or a claim-check upload for sending."""

    class Kind(models.TextChoices):
        INBOUND = "inbound", "Part of a received message"
        UPLOAD = "upload", "Uploaded for sending"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for upload"
        UPLOADED = "uploaded", "Uploaded"
        CLAIMED = "claimed", "Attached to a sent message"
        EXPIRED = "expired", "Expired"
        STORED = "stored", "Part of a received message"

    id = models.CharField(primary_key=True, max_length=40, default=PrefixedId("att"), editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    state = models.CharField(max_length=8, choices=State.choices)
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    content_id = models.CharField(max_length=255, blank=True)
    disposition = models.CharField(max_length=10, blank=True)
    # Inbound: the part's position in a depth-first walk of the raw MIME, for lazy extraction.
    part_index = models.PositiveIntegerField(null=True, blank=True)
    # Uploads: where the bytes are in storage.
    storage_key = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The expiry sweep: pending/uploaded uploads past expires_at.
            models.Index(fields=["state", "expires_at"], name="mail_attachment_state_expiry"),
            # A message delete: is this stored object still referenced by another attachment?
            models.Index(fields=["storage_key"], name="mail_attachment_storage_key"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.filename}"


class SendRequest(models.Model):
    """The idempotency record of a send, reply or forward (API.md: Idempotency).

    Reserved in the database before the side effect; the stored response is replayed
    for a retry with the same key and the same body.
    """

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight", "In flight"
        COMPLETED = "completed", "Completed"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="send_requests")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=10, choices=State.choices, default=State.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "key"], name="mail_sendrequest_agent_key")]
        indexes = [
            # The periodic purge of expired keys.
            models.Index(fields=["expires_at"], name="mail_sendrequest_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}:{self.key}"


class ModerationItem(Message):
    """The moderation queue in the admin: held, quarantined, blocked and unverified mail."""

    class Meta:
        proxy = True
        verbose_name = "moderation queue item"
        verbose_name_plural = "moderation queue"


class ArchiveJob(models.Model):
    """A bulk archive, restore or purge started by staff, run by a Celery task."""

    class Action(models.TextChoices):
        ARCHIVE = "archive", "Archive mail older than N days"
        RESTORE = "restore", "Restore archived mail older than N days"
        PURGE = "purge", "Delete archived mail older than N days (retention)"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    action = models.CharField(max_length=10, choices=Action.choices)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.CASCADE, help_text="empty: every agent")
    older_than_days = models.PositiveIntegerField(default=90)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        scope = self.agent.agent_id if self.agent else "all agents"  # a null key reads as None, no query
        return f"{self.action} {scope} older than {self.older_than_days} days"


class MessageContent(models.Model):
    """What ``mail.content`` read in a message (the contract's Text, Html, ExtractedText,
    Codes, Links, Safety, PromptText), stored once so a read does not parse the MIME again.
    A row of an older ``version`` of the extractor is recomputed on its next read."""

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.CASCADE, related_name="content")
    version = models.PositiveSmallIntegerField()
    data = models.JSONField()
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.message_id} v{self.version}"


class AttachmentText(models.Model):
    """An attachment turned into text by the ``convert_attachment_text`` task, keyed by what
    it is within one account (the account, the kind, its bytes' SHA-256 and the converter's
    version), so the same file is converted once however often it is read. A conversion that
    failed or ran out of time is kept too, with its reason, for staff and so that a file that
    hangs the converter is not tried again on every read."""

    class Status(models.TextChoices):
        PENDING = "pending", "Being converted"
        DONE = "done", "Converted"
        UNREADABLE = "unreadable", "Could not be read (broken, encrypted)"
        TIME_LIMIT = "time_limit", "Ran out of time (ATTACHMENT_TEXT_TIME_LIMIT)"
        FAILED = "failed", "The converter crashed"

    key = models.CharField(primary_key=True, max_length=120)
    # No foreign key: the row outlives any one attachment of these bytes; it is pruned when
    # no attachment of the account's unarchived mail has them (mail.message_content).
    account_id = models.BigIntegerField(null=True)
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    text = models.TextField()
    truncated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Pruning after a delete or a retention archive: this account's rows of these bytes.
            models.Index(fields=["account_id", "sha256"], name="mail_attachmenttext_sha"),
        ]

    def __str__(self) -> str:
        return self.key


class SendCounter(models.Model):
    """Messages an agent sent in one window (an hour or a day, UTC), for its quotas: the
    row is taken by a conditional UPDATE (``count < limit``) in the send's transaction, so
    concurrent sends queue on the row and exactly the quota gets through."""

    class Window(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+", db_index=False)
    window = models.CharField(max_length=4, choices=Window.choices)
    started_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # Also the index of the conditional UPDATE of every governed send.
            models.UniqueConstraint(fields=["agent", "window", "started_at"], name="mail_sendcounter_window"),
        ]
        indexes = [
            # The hourly purge of past windows.
            models.Index(fields=["started_at"], name="mail_sendcounter_started"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.window} {self.started_at:%Y-%m-%d %H:%M}: {self.count}"


class Suppression(models.Model):
    """An address this account's agents may no longer send to: it bounced hard or
    complained (SES tracking), or staff added it. Removable by operators and staff."""

    class Reason(models.TextChoices):
        BOUNCE = "bounce", "Hard bounce"
        COMPLAINT = "complaint", "Complaint"
        MANUAL = "manual", "Added by staff"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="suppressions", db_index=False)
    address = models.CharField(max_length=320)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    detail = models.TextField(blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        constraints = [
            # Also the index of the check every send makes (account, address IN recipients).
            models.UniqueConstraint(fields=["account", "address"], name="mail_suppression_account_address"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.reason})"


class ApprovalDecision(models.Model):
    """Who approved or rejected an outbound message awaiting approval, when, and why."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.CASCADE, related_name="approval")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    # "staff:<username>" or "operator:<token prefix>": who decided, kept if the user goes.
    decided_by = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    decided_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.decision} {self.message_id} by {self.decided_by}"


class OutboundApproval(Message):
    """The admin's "Outbound awaiting approval": messages with Status pending_approval."""

    class Meta:
        proxy = True
        verbose_name = "outbound message awaiting approval"
        verbose_name_plural = "outbound awaiting approval"


class Draft(models.Model):
    """A message an agent is still writing (``POST /v1/drafts``): the send body, checked for
    shape only, plus the message it answers. Sending it goes through the same service as
    ``POST /v1/send`` (policy, approval, schedule) and records the message in that transaction."""

    id = models.CharField(primary_key=True, max_length=40, default=PrefixedId("drf"), editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="drafts", db_index=False)
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    # Null is "no such part", as in a send: an empty body is a part, a missing one is not.
    body = models.TextField(null=True, blank=True)  # noqa: DJ001
    html = models.TextField(null=True, blank=True)  # noqa: DJ001
    headers = models.JSONField(default=dict, blank=True)
    attachment_ids = models.JSONField(default=list, blank=True)
    # A reply draft: threading headers come from this message when it is sent.
    in_reply_to = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    send_at = models.DateTimeField(null=True, blank=True)
    # Set once the draft was sent: it stays readable (with its MessageID) and is never sent again.
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # GET /v1/drafts: one agent's drafts in (created_at, id) keyset order.
            models.Index(fields=["agent", "created_at", "id"], name="mail_draft_agent_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.subject[:60]!r}"

"""Governed sending: the one place every way out (send, reply, forward, drafts, SMTP
submission) asks whether a message may leave, and when (docs/sending.md "Governed sending").

``outbound_govern`` runs inside the send's transaction: the agent's recipient list, the
account's suppressions, the quotas (a counter row taken by a conditional UPDATE, so that
concurrent sends queue on it and exactly the quota gets through), then the status the
message starts in: ``pending_approval``, ``scheduled`` (``send_at`` or the undo window) or
``queued``. The state changes after that (approve, reject, cancel, the release of due
scheduled mail) are claims by conditional update on the status: of two racing, one wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from assmbl import domain
from assmbl.celery import task_queue
from directory.models import Account, Agent, OutboundPolicy
from mail.addresses import address_bare, address_is_local
from mail.dispatch import message_event_record
from mail.models import ApprovalDecision, Message, SendCounter, Suppression

MAX_SCHEDULE_AHEAD = dt.timedelta(days=30)
RELEASE_BATCH = 500


@dataclass(frozen=True)
class Governed:
    """How a message that may leave starts: its status and, when scheduled, its send_at."""

    status: str
    send_at: dt.datetime | None = None


# --- Checks of a new message -------------------------------------------------------------


def send_at_clean(*, send_at: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """A requested send time: in the future and at most 30 days ahead."""
    if send_at is None:
        return None
    if timezone.is_naive(send_at):
        raise domain.Invalid(
            "send_at needs a time zone offset (RFC 3339).", code="invalid_send_at", details={"field": "send_at"}
        )
    if send_at <= now:
        raise domain.Invalid("send_at must be in the future.", code="invalid_send_at", details={"field": "send_at"})
    if send_at > now + MAX_SCHEDULE_AHEAD:
        raise domain.Invalid(
            "send_at must be at most 30 days ahead.", code="invalid_send_at", details={"field": "send_at"}
        )
    return send_at


def _recipient_allowed(bare: str, allowed: Sequence[str]) -> bool:
    return bare in allowed or f"@{bare.rpartition('@')[2]}" in allowed


def recipients_allowed_check(*, policy: OutboundPolicy, recipients: Sequence[str]) -> None:
    """Every recipient is on the agent's ``allowed_recipients`` (an empty list allows anyone)."""
    if not policy.allowed_recipients:
        return
    for address in recipients:
        bare = address_bare(address)
        if not _recipient_allowed(bare, policy.allowed_recipients):
            raise domain.Invalid(
                f"{bare} is not among this agent's allowed recipients.",
                code="recipient_not_allowed",
                details={"address": bare},
            )


def recipients_suppressed_check(*, account: Account, recipients: Sequence[str]) -> None:
    """No recipient bounced hard or complained for this account (``Suppression``)."""
    bare = sorted({address_bare(a) for a in recipients})
    suppressed = Suppression.objects.filter(account=account, address__in=bare).order_by("address").first()
    if suppressed is not None:
        raise domain.Invalid(
            f"{suppressed.address} is suppressed ({suppressed.get_reason_display().lower()}); mail to it is refused.",
            code="recipient_suppressed",
            details={"address": suppressed.address, "reason": suppressed.reason},
        )


def _window_start(window: str, now: dt.datetime) -> dt.datetime:
    now = now.astimezone(dt.UTC)
    if window == SendCounter.Window.HOUR:
        return now.replace(minute=0, second=0, microsecond=0)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


_WINDOW_LENGTH = {SendCounter.Window.HOUR: dt.timedelta(hours=1), SendCounter.Window.DAY: dt.timedelta(days=1)}


def quota_consume(*, agent: Agent, policy: OutboundPolicy, now: dt.datetime) -> None:
    """Count one message against the agent's hourly and daily quotas, or refuse it with
    ``quota_exceeded`` and the seconds until the full window starts over.

    Runs in the send's transaction: the conditional UPDATE locks the counter row until the
    send commits (a concurrent send waits on it, then sees the new count) or rolls back
    (and the count with it), so a refused or failed send never uses up the quota.
    """
    limits = [(SendCounter.Window.HOUR, policy.max_per_hour), (SendCounter.Window.DAY, policy.max_per_day)]
    for window, limit in limits:  # always hour then day: concurrent sends lock in one order
        if limit is None:
            continue
        started_at = _window_start(window, now)
        SendCounter.objects.bulk_create(
            [SendCounter(agent=agent, window=window, started_at=started_at)], ignore_conflicts=True
        )
        taken = SendCounter.objects.filter(agent=agent, window=window, started_at=started_at, count__lt=limit).update(
            count=F("count") + 1
        )
        if not taken:
            retry_after = max(1, int((started_at + _WINDOW_LENGTH[window] - now).total_seconds()) + 1)
            raise domain.TooMany(
                f"This agent may send {limit} messages per {window}; try again later.",
                code="quota_exceeded",
                details={"window": window, "limit": limit},
                retry_after=retry_after,
            )


def _needs_approval(policy: OutboundPolicy, recipients: Sequence[str]) -> bool:
    if policy.approval == OutboundPolicy.Approval.ALWAYS:
        return True
    if policy.approval == OutboundPolicy.Approval.EXTERNAL:
        return any(not address_is_local(a) for a in recipients)
    return False


def outbound_govern(
    *, agent: Agent, recipients: Sequence[str], send_at: dt.datetime | None, now: dt.datetime
) -> Governed:
    """May this message leave, and how does it start? The one check of every way out;
    call it inside the transaction that creates the message (the quota counts in it)."""
    send_at = send_at_clean(send_at=send_at, now=now)
    policy = OutboundPolicy.for_agent(agent)
    recipients_allowed_check(policy=policy, recipients=recipients)
    recipients_suppressed_check(account=agent.account, recipients=recipients)
    quota_consume(agent=agent, policy=policy, now=now)
    if _needs_approval(policy, recipients):
        return Governed(status=Message.Status.PENDING_APPROVAL, send_at=send_at)
    if send_at is None and policy.undo_seconds:
        send_at = now + dt.timedelta(seconds=policy.undo_seconds)
    if send_at is not None:
        return Governed(status=Message.Status.SCHEDULED, send_at=send_at)
    return Governed(status=Message.Status.QUEUED)


def governed_announce(message: Message) -> None:
    """The event of a message that does not go out at once (in its creating transaction)."""
    if message.status == Message.Status.SCHEDULED:
        message_event_record(message=message, type="message.scheduled")
    elif message.status == Message.Status.PENDING_APPROVAL:
        message_event_record(message=message, type="message.pending_approval")


def send_counters_purge(*, now: dt.datetime | None = None) -> int:
    """Forget the counters of windows that ended (the daily one lasts longest)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=2)
    deleted, _ = SendCounter.objects.filter(started_at__lt=cutoff).delete()
    return deleted


# --- State changes after the send --------------------------------------------------------


def _queue_send(message_id: str) -> None:
    # robust: the release is committed; a broker hiccup must not undo it (the sweep of
    # queued messages re-queues it), and the dispatch claim makes a spare task harmless.
    transaction.on_commit(lambda: task_queue("mail.tasks.send_message", message_id), robust=True)


_CANCELABLE = (Message.Status.SCHEDULED, Message.Status.PENDING_APPROVAL)


def message_cancel(*, message: Message) -> Message:
    """Cancel an outbound message that has not been handed to the transport: scheduled,
    awaiting approval, or queued and not yet claimed by a worker. Canceled twice: the same.
    After that, ``already_sent``."""
    with transaction.atomic():
        now = timezone.now()
        mine = Message.objects.filter(pk=message.pk, direction=Message.Direction.OUTBOUND)
        canceled = mine.filter(status__in=_CANCELABLE).update(status=Message.Status.CANCELED, updated_at=now) or (
            # A queued message not yet claimed by dispatch (its claim sets provider_message_id).
            mine.filter(status=Message.Status.QUEUED, provider_message_id="").update(
                status=Message.Status.CANCELED, updated_at=now
            )
        )
        message.refresh_from_db()
        if canceled:
            message_event_record(message=message, type="message.canceled")
        elif message.status != Message.Status.CANCELED:
            raise domain.Conflict(
                "The message was already handed to the transport (or decided); it can no longer be canceled.",
                code="already_sent",
                details={"Status": message.status},
            )
    return message


def _decide(*, message: Message, decision: str, decided_by: str, user_id: int | None, note: str) -> Message:
    with transaction.atomic():
        now = timezone.now()
        if decision == ApprovalDecision.Decision.REJECTED:
            target = Message.Status.REJECTED
        elif message.send_at is not None and message.send_at > now:
            target = Message.Status.SCHEDULED
        else:
            target = Message.Status.QUEUED
        taken = Message.objects.filter(pk=message.pk, status=Message.Status.PENDING_APPROVAL).update(
            status=target, updated_at=now
        )
        message.refresh_from_db()
        if not taken:
            raise domain.Conflict(
                "The message is not awaiting approval (it was decided or canceled).",
                code="not_pending_approval",
                details={"Status": message.status},
            )
        ApprovalDecision.objects.create(
            message=message, decision=decision, decided_by=decided_by[:200], user_id=user_id, note=note
        )
        message_event_record(message=message, type=f"message.{decision}", Note=note, DecidedBy=decided_by)
        if target == Message.Status.SCHEDULED:
            message_event_record(message=message, type="message.scheduled")
        elif target == Message.Status.QUEUED:
            _queue_send(message.id)
    return message


def message_approve(*, message: Message, decided_by: str, user_id: int | None = None, note: str = "") -> Message:
    """Let a message awaiting approval go (at its send_at, if that is still ahead)."""
    return _decide(
        message=message, decision=ApprovalDecision.Decision.APPROVED, decided_by=decided_by, user_id=user_id, note=note
    )


def message_reject(*, message: Message, decided_by: str, user_id: int | None = None, note: str = "") -> Message:
    """Refuse a message awaiting approval: it is never handed to the transport."""
    return _decide(
        message=message, decision=ApprovalDecision.Decision.REJECTED, decided_by=decided_by, user_id=user_id, note=note
    )


def messages_release_due(*, now: dt.datetime | None = None, limit: int = RELEASE_BATCH) -> list[str]:
    """Queue the scheduled messages whose send_at has come (Celery beat, every few seconds).

    Each is claimed by a conditional update from ``scheduled`` to ``queued`` and committed
    before its send task is queued: two releases running at once queue each message once,
    a cancel that came first wins, and a release killed after its commit leaves queued
    messages that the sweep of queued messages picks up.
    """
    now = now or timezone.now()
    due = list(
        Message.objects.filter(status=Message.Status.SCHEDULED, send_at__lte=now)
        .order_by("send_at")
        .values_list("id", flat=True)[:limit]
    )
    released = []
    for message_id in due:
        with transaction.atomic():
            if Message.objects.filter(pk=message_id, status=Message.Status.SCHEDULED).update(
                status=Message.Status.QUEUED, updated_at=now
            ):
                _queue_send(message_id)
                released.append(message_id)
    return released


# --- Suppression ---------------------------------------------------------------------------


def suppression_record(*, message: Message, recipient: str, reason: str, detail: str) -> Suppression | None:
    """A hard bounce or a complaint about a message suppresses the recipient for the whole
    account of the sending agent (``mail.tracking`` decides which provider events are)."""
    address = address_bare(recipient)
    if not address:
        return None
    suppression, _ = Suppression.objects.get_or_create(
        account_id=message.agent.account_id,
        address=address,
        defaults={"reason": reason, "detail": detail[:2000], "message": message},
    )
    return suppression


def suppression_add(
    *, account: Account, address: str, reason: str = Suppression.Reason.MANUAL, detail: str = ""
) -> Suppression:
    suppression, _ = Suppression.objects.get_or_create(
        account=account, address=address_bare(address), defaults={"reason": reason, "detail": detail}
    )
    return suppression


def suppression_delete(*, account: Account, address: str) -> None:
    """Let the account's agents send to the address again; ``suppression_not_found`` if it was not suppressed."""
    deleted, _ = Suppression.objects.filter(account=account, address=address_bare(address)).delete()
    if not deleted:
        raise domain.NotFound("This address is not suppressed.", code="suppression_not_found")

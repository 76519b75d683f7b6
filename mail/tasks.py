"""Celery tasks of the mail app: thin wrappers that re-fetch and call a service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from mail.archival import archive_job_run
from mail.attachments import attachments_expire
from mail.dispatch import (
    TransientSendError,
    message_dispatch,
    message_fail,
    messages_claims_expire,
    messages_queued_stale,
)
from mail.idempotency import send_requests_purge
from mail.ingest import deliveries_process
from mail.message_content import (
    HARD_LIMIT_GRACE_SECONDS,
    attachment_text_convert,
    attachment_text_fail,
    message_contents_extract,
)
from mail.models import InboundDelivery
from mail.outbound import messages_release_due, send_counters_purge


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError, OSError),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=20,
)
def process_deliveries(delivery_ids: list[str]) -> int:
    """One task per accepted batch (a group commit of the listener, an SQS receive)."""
    return len(deliveries_process(delivery_ids))


SWEEP_BATCH = 100


@shared_task
def sweep_stored_deliveries() -> int:
    """Re-queue deliveries that were stored but never processed (a lost task, a broker
    outage between commit and publish). Processing is idempotent, so a spare run is harmless."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.DELIVERY_SWEEP_AFTER_SECONDS)
    ids = list(
        InboundDelivery.objects.filter(
            status__in=[InboundDelivery.Status.STORED, InboundDelivery.Status.FAILED], received_at__lt=cutoff
        ).values_list("id", flat=True)[:1000]
    )
    for start in range(0, len(ids), SWEEP_BATCH):
        process_deliveries.delay(ids[start : start + SWEEP_BATCH])
    return len(ids)


@shared_task
def sweep_expired_attachments() -> int:
    """Delete unclaimed uploads past ATTACHMENT_UPLOAD_TTL_SECONDS (beat: every 10 minutes)."""
    return attachments_expire()


# --- Sending ---------------------------------------------------------------------------------


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientSendError, DatabaseError, OSError),
    retry_backoff=5,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=12,
)
def send_message(self: Any, message_id: str) -> str | None:
    """Safe to run twice: the service sends only while the message is still queued."""
    try:
        message = message_dispatch(message_id=message_id)
    except TransientSendError as exc:
        if self.request.retries >= self.max_retries:
            message = message_fail(message_id=message_id, detail=f"gave up after {self.request.retries} retries: {exc}")
            return message.status if message else None
        raise
    return message.status if message else None


@shared_task
def sweep_queued_messages() -> int:
    """Re-queue outbound messages whose task was lost (broker outage after commit); mark
    the ones whose worker died during the handoff as failed, in doubt."""
    messages_claims_expire(older_than=dt.timedelta(seconds=settings.SEND_CLAIM_TIMEOUT_SECONDS))
    ids = messages_queued_stale(older_than=dt.timedelta(seconds=settings.SEND_SWEEP_AFTER_SECONDS))
    for message_id in ids:
        send_message.delay(message_id)
    return len(ids)


@shared_task
def purge_send_requests() -> int:
    return send_requests_purge() + send_counters_purge()


@shared_task
def release_scheduled_messages() -> int:
    """Queue the scheduled messages that are due (beat: every few seconds). Each is claimed
    by a conditional update, so a spare or overlapping run queues nothing twice."""
    return len(messages_release_due())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_archive_job(job_id: int) -> str:
    return archive_job_run(job_id=job_id).state


# --- Content ---------------------------------------------------------------------------------


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(DatabaseError, OSError), max_retries=5)
def extract_content(message_ids: list[str]) -> int:
    """Compute the stored content of new messages (mail.message_content); a spare run is a no-op."""
    return message_contents_extract(message_ids=message_ids)


class _ConversionTask(Task[Any, Any]):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Celery calls this in the worker's main process when the hard time limit killed the
        # child mid-conversion (the task itself records every other outcome).
        if isinstance(exc, TimeLimitExceeded) and args:
            attachment_text_fail(attachment_id=args[0], error=f"stopped by the hard time limit ({exc})")


@shared_task(
    base=_ConversionTask,
    acks_late=True,
    # A file that kills the worker process must not be redelivered for ever: the pending
    # row is queued again by a later read, at most MAX_ATTEMPTS times.
    reject_on_worker_lost=False,
    autoretry_for=(DatabaseError, OSError),
    retry_backoff=2,
    max_retries=3,
    time_limit=settings.ATTACHMENT_TEXT_TIME_LIMIT + HARD_LIMIT_GRACE_SECONDS,
)
def convert_attachment_text(attachment_id: str) -> str:
    """Convert one attachment to text under ATTACHMENT_TEXT_TIME_LIMIT (mail.message_content)."""
    return attachment_text_convert(attachment_id=attachment_id)

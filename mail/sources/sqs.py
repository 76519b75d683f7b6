"""The SQS consumer of the SES → S3 → SNS → SQS path (``manage.py consume_sqs``).

At-least-once without loss: a message is deleted only after ``ses_notification_accept``
committed its delivery. A crash before the delete makes SQS redeliver it after the
visibility timeout, and the external id (``ses:<messageId>``, shared with the SNS webhook)
turns the redelivery into a no-op. Bodies are either SNS envelopes (signature verified with
the webhook's verifier) or raw SES notifications (raw message delivery on the subscription).
A body that can never be ingested is left alone: the queue's redrive policy moves it to the
dead-letter queue after ``maxReceiveCount`` tries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from mail.sources.ses import SesNotificationError, ses_notification_accept
from mail.sources.sns import SnsVerificationError, sns_message_verify

log = logging.getLogger(__name__)


@dataclass
class PollCounts:
    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    skipped: int = 0  # not mail (SES setup notice, subscription messages): deleted
    failed: int = 0  # left on the queue for redelivery / the DLQ


def sqs_client() -> Any:
    import boto3

    return boto3.client("sqs", region_name=settings.AWS_REGION)


def sqs_notification(body: str) -> dict[str, Any] | None:
    """The SES notification in an SQS body, or None when the body is not mail.
    Raises SnsVerificationError / SesNotificationError for bodies that must not be deleted."""
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise SesNotificationError("SQS body is not JSON") from err
    if not isinstance(payload, dict):
        raise SesNotificationError("SQS body is not a JSON object")
    if "notificationType" in payload:
        return payload
    if "TopicArn" in payload or "Type" in payload:
        sns_message_verify(payload)
        if payload.get("Type") != "Notification":
            return None
        try:
            inner = json.loads(payload.get("Message") or "")
        except ValueError:
            return None  # SES's plain-text "Successfully validated SNS topic" notice
        return inner if isinstance(inner, dict) else None
    if payload.get("Event") == "s3:TestEvent":
        return None
    raise SesNotificationError("SQS body is neither an SES notification nor an SNS envelope")


def sqs_message_handle(body: str) -> str:
    """Ingest one body durably; returns "accepted", "duplicate" or "skipped"."""
    notification = sqs_notification(body)
    if notification is None:
        return "skipped"
    if notification.get("notificationType") != "Received":
        log.warning("SQS: ignoring SES %s notification", notification.get("notificationType"))
        return "skipped"
    accepted = ses_notification_accept(notification=notification, source="sqs")
    return "accepted" if accepted.created else "duplicate"


def sqs_poll(*, client: Any, queue_url: str, wait_seconds: int, visibility_seconds: int | None = None) -> PollCounts:
    """One long-poll: receive up to 10 messages, ingest each, delete the ingested ones."""
    counts = PollCounts()
    params: dict[str, Any] = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": wait_seconds}
    if visibility_seconds is not None:
        params["VisibilityTimeout"] = visibility_seconds
    for message in client.receive_message(**params).get("Messages", []):
        counts.received += 1
        try:
            outcome = sqs_message_handle(message["Body"])
        except (SnsVerificationError, SesNotificationError) as err:
            log.error("SQS message %s refused, left for the DLQ: %s", message.get("MessageId"), err)
            counts.failed += 1
            continue
        except Exception:
            # Storage or database trouble: leave it, SQS redelivers after the timeout.
            log.exception("SQS message %s not ingested; it will be redelivered", message.get("MessageId"))
            counts.failed += 1
            continue
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return counts

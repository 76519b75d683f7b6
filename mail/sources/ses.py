"""SES receipt notifications ("notificationType": "Received") into the one pipeline.

Both the SNS webhook and the SQS consumer call ``ses_notification_accept``; the external id
is ``ses:<SES messageId>`` for both, so the same SES message arriving by both paths (or
redelivered by either) is one delivery.

Where the bytes are:
- S3 action: SES wrote ``s3://<bucketName>/<objectKey>``. ``objectKey`` is relative to the
  bucket and includes the rule's object key prefix. ``ses_activate`` sets that prefix to
  ``MAIL_S3_PREFIX/``, which is the mail storage's ``location``, so the storage key is the
  object key with the prefix stripped and we record only the pointer.
  An object in another bucket or outside the prefix (a rule someone wrote by hand, or
  ``MAIL_STORAGE=file``) is copied into the mail storage instead: slower, never lost.
- SNS action: the notification carries the content (up to 150 KB); it is stored as usual.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from django.conf import settings

from mail.ingest import Accepted, delivery_accept, delivery_accept_stored

log = logging.getLogger(__name__)

# SES receipt verdict fields -> our authentication keys.
VERDICTS = {
    "spfVerdict": "spf",
    "dkimVerdict": "dkim",
    "dmarcVerdict": "dmarc",
    "spamVerdict": "spam",
    "virusVerdict": "virus",
}


class SesNotificationError(Exception):
    """Not a receipt notification we can ingest (logged; the caller decides whether to retry)."""


def ses_authentication(receipt: dict[str, Any]) -> dict[str, Any]:
    """SES verdicts as lower-case words: {"spf": "pass", ..., "source": "ses"}."""
    authentication: dict[str, Any] = {"source": "ses"}
    for field, name in VERDICTS.items():
        status = (receipt.get(field) or {}).get("status")
        if isinstance(status, str) and status:
            authentication[name] = status.lower()
    policy = receipt.get("dmarcPolicy")
    if isinstance(policy, str) and policy:
        authentication["dmarc_policy"] = policy.lower()
    return authentication


def ses_storage_key(bucket: str, object_key: str) -> str | None:
    """The mail-storage key for an S3 object SES wrote, or None when the object is not
    inside the mail storage (then it must be copied)."""
    if settings.MAIL_STORAGE != "s3" or bucket != settings.MAIL_S3_BUCKET:
        return None
    prefix = settings.MAIL_S3_PREFIX.strip("/")
    if not prefix:
        return object_key
    if object_key.startswith(prefix + "/") and len(object_key) > len(prefix) + 1:
        return object_key[len(prefix) + 1 :]
    return None


def _s3_object_read(bucket: str, key: str) -> bytes:
    import boto3

    client = boto3.client("s3", region_name=settings.AWS_REGION, endpoint_url=settings.AWS_S3_ENDPOINT_URL)
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def ses_notification_accept(*, notification: dict[str, Any], source: str) -> Accepted:
    """Record one SES receipt notification durably. Safe to call again with the same one."""
    if notification.get("notificationType") != "Received":
        raise SesNotificationError(f"not a receipt notification: {notification.get('notificationType')!r}")
    mail = notification.get("mail") or {}
    receipt = notification.get("receipt") or {}
    action = receipt.get("action") or {}
    message_id = mail.get("messageId")
    recipients = receipt.get("recipients")
    if not isinstance(message_id, str) or not message_id or not isinstance(recipients, list):
        raise SesNotificationError("receipt notification without mail.messageId or receipt.recipients")
    common: dict[str, Any] = {
        "source": source,
        "external_id": f"ses:{message_id}",
        "envelope_recipients": [str(r) for r in recipients],
        "envelope_from": str(mail.get("source") or ""),
        "authentication": ses_authentication(receipt),
    }
    action_type = action.get("type")
    if action_type == "S3":
        bucket, object_key = str(action.get("bucketName", "")), str(action.get("objectKey", ""))
        if not bucket or not object_key:
            raise SesNotificationError("S3 action without bucketName/objectKey")
        storage_key = ses_storage_key(bucket, object_key)
        if storage_key is not None:
            return delivery_accept_stored(storage_key=storage_key, **common)
        log.warning("SES object s3://%s/%s is outside the mail storage; copying it", bucket, object_key)
        return delivery_accept(raw=_s3_object_read(bucket, object_key), **common)
    if action_type == "SNS":
        content = notification.get("content")
        if not isinstance(content, str):
            raise SesNotificationError("SNS action without content")
        raw = (
            base64.b64decode(content)
            if action.get("encoding") == "BASE64"
            else content.encode("utf-8", "surrogateescape")
        )
        return delivery_accept(raw=raw, **common)
    raise SesNotificationError(f"unsupported SES receipt action {action_type!r} (use S3 or SNS)")

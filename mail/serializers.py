"""The inbox item: the one shape a message has in the API, in events and in the SDK.

Built by a plain function rather than a ModelSerializer because it is on the hottest
path (every listing, every event) and field names are PascalCase (API.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mail.models import Message


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def message_item(message: Message) -> dict[str, Any]:
    """Assumes labels and attachments are prefetched when called in a loop."""
    return {
        "MessageID": message.id,
        "AgentID": message.agent.agent_id,
        "Direction": message.direction,
        "Status": message.status,
        "From": message.from_header,
        "Sender": message.sender,
        "To": list(message.to),
        "Cc": list(message.cc),
        "Subject": message.subject,
        "BodyPreview": message.body_preview,
        "ReceivedAt": rfc3339(message.received_at),
        "SenderVerified": message.sender_verified,
        "Authentication": {
            key: message.authentication.get(key) for key in ("spf", "dkim", "dmarc", "aligned")
        },
        "Labels": sorted(label.name for label in message.labels.all()),
        "IsRead": message.is_read,
        "Archived": message.archived,
        "Disposition": message.disposition,
        "ThreadID": message.thread_id,
        "InternetMessageID": message.internet_message_id,
        "Attachments": [
            {
                "AttachmentID": att.id,
                "Filename": att.filename,
                "ContentType": att.content_type,
                "Size": att.size,
            }
            for att in message.attachments.all()
        ],
        "Size": message.size,
    }


def with_item_relations(queryset: Any) -> Any:
    return queryset.select_related("agent").prefetch_related("labels", "attachments")

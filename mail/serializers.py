"""The inbox item: the one shape a message has in the API, in events and in the SDK.

Built by a plain function rather than a ModelSerializer because it is on the hottest
path (every listing, every event) and field names are PascalCase (API.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from assmbl.errors import ValidationFailed
from assmbl.query import cursor_decode
from mail.models import Attachment, Message
from mail.querysets import ITEM_ATTACHMENT_COLUMNS, ITEM_ATTACHMENTS, ITEM_LABELS
from mail.services import label_validate


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def message_item(
    message: Message, *, labels: list[str] | None = None, attachments: list[Attachment] | None = None
) -> dict[str, Any]:
    """In a loop, the messages come from ``with_item_relations()`` (which reads their label
    names and attachments in the same query), or the caller already holds them and passes
    them (ingestion: a message indexed just now has no labels and exactly the attachments
    it created). Otherwise they are read here, two queries."""
    if labels is None:
        if ITEM_LABELS in message.__dict__:
            labels = message.__dict__[ITEM_LABELS] or []
        else:
            labels = [label.name for label in message.labels.all()]
    if attachments is None and ITEM_ATTACHMENTS in message.__dict__:
        rows = message.__dict__[ITEM_ATTACHMENTS] or []
    else:
        if attachments is None:
            attachments = list(message.attachments.all())
        rows = [{name: getattr(att, name) for name in ITEM_ATTACHMENT_COLUMNS} for att in attachments]
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
        "Authentication": {key: message.authentication.get(key) for key in ("spf", "dkim", "dmarc", "aligned")},
        "Labels": sorted(labels),
        "IsRead": message.is_read,
        "Archived": message.archived,
        "Disposition": message.disposition,
        "ThreadID": message.thread_id,
        "InternetMessageID": message.internet_message_id,
        "Attachments": [
            {
                "AttachmentID": row["id"],
                "Filename": row["filename"],
                "ContentType": row["content_type"],
                "Size": row["size"],
                "ContentID": row["content_id"],
                "Disposition": row["disposition"],
            }
            # In the order of the parts (uploads sent by the agent: in upload order). From
            # with_item_relations() created_at is text in one format per database, UTC, the
            # fraction left out when zero: its text order is the timestamps' order.
            for row in sorted(rows, key=lambda r: (r["part_index"] or 0, r["created_at"], r["id"]))
        ],
        "Size": message.size,
    }


# --- Input of the inbox API -------------------------------------------------------------------
# Small DRF serializers that check the shape of a request; the rules (how many labels, what
# archiving an archived message means) live in mail.services.


MAX_QUERY_LENGTH = 256


@extend_schema_field({"type": "string", "enum": ["true", "false", "1", "0"]})
class StrictBooleanField(serializers.Field):
    """Query booleans: ``true``/``false``/``1``/``0`` only (API.md); JSON bodies: true/false only."""

    default_error_messages = {"invalid": "Must be true, false, 1 or 0."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, str):
            if data in ("true", "1"):
                return True
            if data in ("false", "0"):
                return False
        self.fail("invalid")
        raise AssertionError  # unreachable; fail() raises

    def to_representation(self, value: bool) -> bool:
        return bool(value)


@extend_schema_field(OpenApiTypes.BOOL)
class StrictJSONBooleanField(serializers.Field):
    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data: Any) -> bool:
        if data is True or data is False:
            return data
        self.fail("invalid")
        raise AssertionError

    def to_representation(self, value: bool) -> bool:
        return bool(value)


class PageQuerySerializer(serializers.Serializer):
    """``limit`` and ``cursor``, as every message listing takes them (inbox, sent, threads):
    limit 1..100 (never a silent clamp), the cursor decoded to (received_at, id)."""

    limit = serializers.IntegerField(min_value=1, max_value=100, default=25)
    cursor = serializers.CharField(required=False, allow_blank=False, max_length=1000, trim_whitespace=False)

    def validate_cursor(self, value: str) -> tuple[dt.datetime, str]:
        return cursor_decode(value)


class ThreadQuerySerializer(PageQuerySerializer):
    """A thread is read whole more often than paged: a larger default page."""

    limit = serializers.IntegerField(min_value=1, max_value=100, default=100)


class InboxQuerySerializer(PageQuerySerializer):
    """Query parameters of GET /v1/inbox."""

    q = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    label = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    is_read = StrictBooleanField(required=False)
    include_archived = StrictBooleanField(required=False, default=False)
    verified_only = StrictBooleanField(required=False, default=False)

    def validate_q(self, value: str) -> str:
        if not value.strip():
            raise ValidationFailed("q must not be empty when given.", code="empty_query")
        if len(value) > MAX_QUERY_LENGTH:
            raise ValidationFailed(f"q is at most {MAX_QUERY_LENGTH} characters.", code="query_too_long")
        return value

    def validate_label(self, value: str) -> str:
        return label_validate(value)


class UnreadCountQuerySerializer(serializers.Serializer):
    """Query parameters of GET /v1/inbox/unread-count: the inbox filters but q and cursor."""

    label = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    is_read = StrictBooleanField(required=False)
    verified_only = StrictBooleanField(required=False, default=False)
    # Accepted so that a client can pass its inbox filters unchanged, but archived mail is
    # never counted (API.md): asking for it is an error rather than a silently wrong count.
    include_archived = StrictBooleanField(required=False, default=False)

    def validate_label(self, value: str) -> str:
        return label_validate(value)

    def validate_include_archived(self, value: bool) -> bool:
        if value:
            raise ValidationFailed("The unread count never includes archived messages.", code="archived_not_counted")
        return value


class LabelField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_blank=True, trim_whitespace=False, max_length=None, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # Before DRF's own null/blank checks, so every bad label gets the same code.
        return self.to_internal_value(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise ValidationFailed("A label must be a string.", code="invalid_label", details={"label": data})
        return label_validate(data)


class LabelsPatchSerializer(serializers.Serializer):
    add = serializers.ListField(child=LabelField(), required=False, default=list, max_length=100)
    remove = serializers.ListField(child=LabelField(), required=False, default=list, max_length=100)


class ReadPatchSerializer(serializers.Serializer):
    is_read = StrictJSONBooleanField()


class ArchivePatchSerializer(serializers.Serializer):
    archived = StrictJSONBooleanField()

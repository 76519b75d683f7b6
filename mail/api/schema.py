"""Documentation-only serializers of responses: the inbox item from the field table that
``mail.serializers.message_item`` builds it from (mail.items), so the OpenAPI schema says
exactly what the API returns. Requests are described by the input serializers that
validate them."""

from __future__ import annotations

import functools
from typing import Any

from rest_framework import serializers

from mail.items import ITEM_FIELDS, Schema, SubField


def schema_field(schema: Schema, ref_name: str = "") -> serializers.Field[Any, Any, Any, Any]:
    """The DRF field that documents a field of mail.items' tables."""
    if schema.kind == "string":
        return serializers.CharField(allow_blank=schema.blank)
    if schema.kind == "choice":
        return serializers.ChoiceField(choices=list(schema.choices))
    if schema.kind == "integer":
        return serializers.IntegerField(min_value=0)
    if schema.kind == "boolean":
        return serializers.BooleanField()
    if schema.kind == "datetime":
        return serializers.DateTimeField()
    if schema.kind == "strings":
        return serializers.ListField(child=serializers.CharField())
    if schema.kind == "json":
        return serializers.JSONField()  # any JSON value, null included
    if schema.kind in ("object", "objects"):
        return _nested(schema.fields, ref_name)(many=schema.kind == "objects")
    raise ValueError(f"no schema kind {schema.kind!r}")


@functools.cache
def _nested(fields: tuple[SubField, ...], ref_name: str) -> type[serializers.Serializer[Any]]:
    """One class per nested object, made once: spectacular names a component after it."""
    attrs: dict[str, Any] = {sub.name: schema_field(sub.schema) for sub in fields}
    attrs["Meta"] = type("Meta", (), {"ref_name": ref_name})
    return type(ref_name, (serializers.Serializer,), attrs)


# The item's fields come from the table that builds it (mail.items.ITEM_FIELDS); no
# docstring, which spectacular would publish as the component's description.
class InboxItemSchema(serializers.Serializer[Any]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = {
            item.name: schema_field(item.schema, _NESTED_REF_NAMES.get(item.name, item.name)) for item in ITEM_FIELDS
        }
        return {**fields, **super().get_fields()}

    class Meta:
        ref_name = "InboxItem"


# The component names of the item's nested objects.
_NESTED_REF_NAMES = {"Attachments": "AttachmentItemSchema", "Authentication": "AuthenticationSchema"}


class LinkSchema(serializers.Serializer[Any]):
    url = serializers.CharField()
    text = serializers.CharField(allow_blank=True, help_text="The link's text; empty for a link found in plain text.")

    class Meta:
        ref_name = "MessageLink"


class SafetySchema(serializers.Serializer[Any]):
    hidden_text = serializers.BooleanField(help_text="The HTML or text held text a reader cannot see (removed).")
    flags = serializers.ListField(
        child=serializers.ChoiceField(
            choices=["hidden_text", "instructions_to_model", "link_text_mismatch", "lookalike_sender"]
        ),
        help_text="Flags inform; they never drop mail.",
    )

    class Meta:
        ref_name = "MessageSafety"


class AttachmentTextSchema(serializers.Serializer[Any]):
    AttachmentID = serializers.CharField()
    ContentType = serializers.CharField()
    Text = serializers.CharField(
        allow_blank=True, help_text="The attachment as text (Markdown where it has structure)."
    )
    Truncated = serializers.BooleanField(help_text="The text was cut at 1,000,000 characters.")

    class Meta:
        ref_name = "AttachmentText"


class MessageDetailSchema(InboxItemSchema):
    Text = serializers.CharField(allow_blank=True, help_text="The decoded text body, hidden text removed.")
    Html = serializers.CharField(allow_null=True, help_text="The HTML body sanitised, or null without one.")
    ExtractedText = serializers.CharField(
        allow_blank=True, help_text="What this message adds: Text without quoted history and signature."
    )
    Codes = serializers.ListField(child=serializers.CharField(), help_text="One-time codes, at most 5.")
    Links = LinkSchema(many=True, help_text="Up to 50 http(s) links, in order, without duplicates.")
    Safety = SafetySchema()
    PromptText = serializers.CharField(
        help_text="Header block, then ExtractedText fenced in <untrusted_email> ... </untrusted_email>."
    )
    raw_mime = serializers.CharField(
        allow_blank=True, help_text="The stored raw MIME as text (UTF-8, invalid bytes replaced); exact bytes at /raw."
    )

    class Meta:
        ref_name = "MessageDetail"


class InboxPageSchema(serializers.Serializer[Any]):
    items = InboxItemSchema(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "InboxPage"


class UnreadCountSchema(serializers.Serializer[Any]):
    unread_count = serializers.IntegerField(min_value=0)

    class Meta:
        ref_name = "UnreadCount"


class InboxItemPageSchema(serializers.Serializer[Any]):
    """GET /v1/sent: the same page shape as the inbox."""

    items = InboxItemSchema(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "SentPage"


class ThreadPageSchema(InboxItemPageSchema):
    thread_id = serializers.CharField()

    class Meta:
        ref_name = "ThreadPage"


class SendAcceptedSchema(serializers.Serializer[Any]):
    MessageID = serializers.CharField()
    Status = serializers.CharField()

    class Meta:
        ref_name = "SendAccepted"


class UploadTicketSchema(serializers.Serializer[Any]):
    AttachmentID = serializers.CharField()
    upload_url = serializers.CharField()
    upload_method = serializers.CharField(help_text="PUT (embedded storage) or POST (S3 presigned POST)")
    expires_at = serializers.DateTimeField(allow_null=True)
    upload_fields = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="form fields of an S3 presigned POST"
    )

    class Meta:
        ref_name = "UploadTicket"


class UploadItemSchema(serializers.Serializer[Any]):
    AttachmentID = serializers.CharField()
    Filename = serializers.CharField(allow_blank=True)
    ContentType = serializers.CharField(allow_blank=True)
    Size = serializers.IntegerField(allow_null=True)
    Sha256 = serializers.CharField(allow_null=True)
    State = serializers.CharField()
    ExpiresAt = serializers.DateTimeField(allow_null=True)
    MessageID = serializers.CharField(allow_null=True)

    class Meta:
        ref_name = "Upload"


class DownloadUrlSchema(serializers.Serializer[Any]):
    url = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "DownloadUrl"


class ThreadItemSchema(serializers.Serializer[Any]):
    ThreadID = serializers.CharField()
    Subject = serializers.CharField(allow_blank=True, help_text="the first message's subject")
    Participants = serializers.ListField(
        child=serializers.CharField(), help_text="bare addresses of senders and recipients (To, Cc), at most 50"
    )
    MessageCount = serializers.IntegerField(min_value=1)
    UnreadCount = serializers.IntegerField(min_value=0, help_text="unread received messages, archived ones not counted")
    Labels = serializers.ListField(child=serializers.CharField(), help_text="every label of its messages, sorted")
    FirstMessageAt = serializers.DateTimeField()
    LastMessageAt = serializers.DateTimeField()
    LastMessageID = serializers.CharField()
    LastMessagePreview = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "ThreadItem"


class ThreadListPageSchema(serializers.Serializer[Any]):
    items = ThreadItemSchema(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "ThreadList"


class MessagesBatchSchema(serializers.Serializer[Any]):
    items = InboxItemSchema(many=True)
    not_found = serializers.ListField(
        child=serializers.CharField(), help_text="ids that are not this agent's messages (unknown or another agent's)"
    )

    class Meta:
        ref_name = "MessagesBatch"

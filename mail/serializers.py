"""The inbox item: the one shape a message has in the API, in events and in the SDK, and
the input serializers of the mail API.

The item is built from the field table of mail.items by a plain function rather than a
ModelSerializer because it is on the hottest path (every listing, every event) and field
names are PascalCase (API.md).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, TypedDict

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from assmbl.errors import ValidationFailed
from assmbl.inputs import (
    HEADER_TEXT_PATTERN,
    MAX_HEADER_VALUE,
    SPACE_CLASS,
    CursorField,
    HeaderTextField,
    InputSerializer,
    StrictCharField,
    StrictIntegerField,
)
from assmbl.inputs import StrictBooleanField as StrictBooleanJSONField
from assmbl.query import cursor_decode
from mail.items import ATTACHMENTS, ITEM_RELATED, LABELS, item_render
from mail.items import rfc3339 as rfc3339  # the API's one timestamp format, used by every view
from mail.models import Attachment, Message, Thread
from mail.parsing import sanitize_filename
from mail.services import label_validate


def message_item(
    message: Message, *, labels: list[str] | None = None, attachments: list[Attachment] | None = None
) -> dict[str, Any]:
    """The item of ``message`` (mail.items). In a loop, the messages come from
    ``with_item_relations()`` (which reads their label names and attachments with them), or
    the caller already holds them and passes them (ingestion: a message indexed just now
    has no labels and exactly the attachments it created). Otherwise they are read here,
    one query each."""
    given = {
        LABELS.relation: labels,
        ATTACHMENTS.relation: None if attachments is None else ATTACHMENTS.rows_of(attachments),
    }
    rows: dict[str, list[Any]] = {}
    for related in ITEM_RELATED:
        known = given.get(related.relation)
        if known is not None:
            rows[related.relation] = known
        elif related.attr in message.__dict__:
            rows[related.relation] = message.__dict__[related.attr] or []
        else:
            rows[related.relation] = related.rows_of(getattr(message, related.relation).all())
    return item_render(message, rows)


# --- Input of the inbox API -------------------------------------------------------------------
# Small DRF serializers that check the shape of a request; the rules (how many labels, what
# archiving an archived message means) live in mail.services.


MAX_QUERY_LENGTH = 256


@extend_schema_field({"type": "string", "enum": ["true", "false", "1", "0"]})
class StrictBooleanField(serializers.Field[bool, Any, bool, Any]):
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


# JSON bodies take JSON booleans only (assmbl.inputs); the name is kept for the callers.
StrictJSONBooleanField = StrictBooleanJSONField


# label_validate's rule as a schema: 1-64 characters, not only white space (str.isspace), no
# control character, no format character of the BMP (mail.services._label_forbidden). The classes are written out
# from Python's Unicode tables (tests/test_schema.py checks them against unicodedata), so
# the schema and the check agree whatever Unicode version the client's regex engine has.
CONTROL_OR_FORMAT_CLASS = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    r"\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
LABEL_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": f"^[^{CONTROL_OR_FORMAT_CLASS}]*[^{CONTROL_OR_FORMAT_CLASS}{SPACE_CLASS}][^{CONTROL_OR_FORMAT_CLASS}]*$",
}
# q: not empty or only white space (as str.strip() sees it), at most 256 characters.
QUERY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_LENGTH, "pattern": f"[^{SPACE_CLASS}]"}


@extend_schema_field(LABEL_SCHEMA)
class LabelQueryField(serializers.CharField):
    """The ``label`` query parameter. Declared as ``label = LabelQueryField()``, which the
    stubs read as setting ``Field.label`` (a serializer is a field, with a display label):
    the serializer's metaclass moves declared fields out of the class, so the attribute is
    never set; hence the ``type: ignore[assignment]`` where it is declared."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, trim_whitespace=False, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data is serializers.empty:
            return super().run_validation(data)
        # Before DRF's blank check, so an empty label is invalid_label like any bad one.
        return label_validate(data)


@extend_schema_field(QUERY_SCHEMA)
class SearchQueryField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, trim_whitespace=False, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data is serializers.empty:
            return super().run_validation(data)
        if not data.strip():
            raise ValidationFailed("q must not be empty when given.", code="empty_query")
        if len(data) > MAX_QUERY_LENGTH:
            raise ValidationFailed(f"q is at most {MAX_QUERY_LENGTH} characters.", code="query_too_long")
        return data


@extend_schema_field({"type": "string", "enum": ["false", "0"]})
class FalseOnlyBooleanField(StrictBooleanField):
    pass


class PageQuerySerializer(serializers.Serializer[Any]):
    """``limit`` and ``cursor``, as every message listing takes them (inbox, sent, threads):
    limit 1..100 (never a silent clamp), the cursor decoded to (received_at, id)."""

    limit = serializers.IntegerField(min_value=1, max_value=100, default=25)
    cursor = CursorField()

    def validate_cursor(self, value: str) -> tuple[dt.datetime, str]:
        return cursor_decode(value)


class ThreadQuerySerializer(PageQuerySerializer):
    """A thread is read whole more often than paged: a larger default page."""

    limit = serializers.IntegerField(min_value=1, max_value=100, default=100)


# The grammar (API.md, "Search grammar"; mail.search), as the schema shows it.
SEARCH_HELP = (
    'search: bare terms and "quoted phrases" are case-insensitive substrings of Subject, BodyPreview, '
    "Sender or the From name (% _ \\ literal), all must match; operators from: to: cc: subject: body: "
    "filename: label: is:unread|read|archived|verified has:attachment before:YYYY-MM-DD after:YYYY-MM-DD "
    "larger:10k smaller:2m; a leading - negates a term. A malformed operator value is 400 invalid_query"
)


class SentQuerySerializer(PageQuerySerializer):
    """Query parameters of GET /v1/sent."""

    q = SearchQueryField(help_text=SEARCH_HELP)


class InboxQuerySerializer(PageQuerySerializer):
    """Query parameters of GET /v1/inbox."""

    q = SearchQueryField(help_text=SEARCH_HELP)
    label = LabelQueryField(help_text="only messages carrying this label (exact)")  # type: ignore[assignment]  # a field, not Field.label: see LabelQueryField
    is_read = StrictBooleanField(required=False, help_text="only read (true) or unread (false) messages")
    include_archived = StrictBooleanField(required=False, default=False, help_text="include archived messages")
    verified_only = StrictBooleanField(
        required=False, default=False, help_text="only messages whose SenderVerified is true"
    )


class UnreadCountQuerySerializer(serializers.Serializer[Any]):
    """Query parameters of GET /v1/inbox/unread-count: the inbox filters but q and cursor."""

    label = LabelQueryField(help_text="only messages carrying this label (exact)")  # type: ignore[assignment]  # a field, not Field.label: see LabelQueryField
    is_read = StrictBooleanField(required=False, help_text="only read (true) or unread (false) messages")
    verified_only = StrictBooleanField(
        required=False, default=False, help_text="only messages whose SenderVerified is true"
    )
    # Accepted so that a client can pass its inbox filters unchanged, but archived mail is
    # never counted (API.md): asking for it is an error rather than a silently wrong count.
    include_archived = FalseOnlyBooleanField(
        required=False, default=False, help_text="only false is accepted: archived mail is never counted"
    )

    def validate_include_archived(self, value: bool) -> bool:
        if value:
            raise ValidationFailed("The unread count never includes archived messages.", code="archived_not_counted")
        return value


@extend_schema_field(LABEL_SCHEMA)
class LabelField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # Before DRF's own null/blank checks, so every bad label gets the same code.
        return self.to_internal_value(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise ValidationFailed("A label must be a string.", code="invalid_label", details={"label": data})
        return label_validate(data)


class LabelsPatchSerializer(InputSerializer):
    """Labels to add and to remove, in one transaction."""

    add = serializers.ListField(child=LabelField(), required=False, default=list, max_length=100)
    remove = serializers.ListField(child=LabelField(), required=False, default=list, max_length=100)


class ReadPatchSerializer(InputSerializer):
    """Mark the message read (true) or unread (false)."""

    is_read = StrictBooleanJSONField()


class ArchivePatchSerializer(InputSerializer):
    """Archive (true) or restore (false) the message."""

    archived = StrictBooleanJSONField()


# --- Input of the sending API -------------------------------------------------------------------
# Shape only: an address's syntax, the recipient limit and attachment ownership are
# mail.sending's rules. Codes are the ones docs/sending.md documents.

# Headers a caller may never set: they are ours (From is always the agent) or the
# library's (MIME structure); only X- headers pass, and the idempotency one is ours too.
HEADER_NAME_PATTERN = "^X-[A-Za-z0-9][A-Za-z0-9-]{0,75}$"
RESERVED_HEADER_PATTERN = (
    "^" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in "X-AgentMail-Idempotency-Key") + "$"
)
_SENDING_CODES = {
    "required": "missing_field",
    "header_injection": "header_injection",
    "invalid_header": "invalid_header",
    "invalid_send_at": "invalid_send_at",
    "*": "invalid_field",
}
_ADDRESS_ITEM = {"type": "string", "format": "email", "maxLength": MAX_HEADER_VALUE}


_ADDRESSES_DESCRIPTION = "an address (`a@example.com` or `Name <a@example.com>`) or a list of them"


@extend_schema_field(
    {
        "anyOf": [_ADDRESS_ITEM, {"type": "array", "items": _ADDRESS_ITEM, "minItems": 1, "maxItems": 50}],
        "description": _ADDRESSES_DESCRIPTION,
    }
)
class AddressesField(serializers.Field[list[str], Any, Any, Any]):
    """An address or a list of addresses, as strings fit for a header; ``mail.sending``
    checks that each one is an address. Optional ones may be null, "" or []."""

    default_error_messages = {"invalid": "Must be an address or a list of addresses."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._item = HeaderTextField(allow_blank=True)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if not self.required and data in (None, "", []):
            return True, []
        if self.required and data in (None, "", []):
            self.fail("required")
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> list[str]:
        values = [data] if isinstance(data, str) else data
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationFailed(
                f"{self.field_name} must be an address or a list of addresses.",
                code="invalid_address",
                details={"field": self.field_name},
            )
        for value in values:
            self._item.run_validation(value)
        return values

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {
        "anyOf": [
            _ADDRESS_ITEM,
            {"type": "string", "maxLength": 0},
            {"type": "array", "items": _ADDRESS_ITEM, "maxItems": 50},
            {"type": "null"},
        ],
        "description": f'{_ADDRESSES_DESCRIPTION}; null, "" and [] are none',
    }
)
class OptionalAddressesField(AddressesField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "string",
            "maxLength": MAX_HEADER_VALUE,
            "pattern": HEADER_TEXT_PATTERN,
        },
        "propertyNames": {"pattern": HEADER_NAME_PATTERN, "not": {"pattern": RESERVED_HEADER_PATTERN}},
        "maxProperties": 50,
        "description": "extra X- headers (not X-AgentMail-Idempotency-Key)",
    }
)
class ExtraHeadersField(serializers.DictField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=HeaderTextField(allow_blank=True), **kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if not isinstance(data, dict):
            raise ValidationFailed("headers must be an object.", code="invalid_header", details={"field": "headers"})
        if len(data) > 50:
            raise ValidationFailed("At most 50 headers.", code="invalid_header", details={"field": "headers"})
        for name in data:
            if not re.match(HEADER_NAME_PATTERN, name) or re.match(RESERVED_HEADER_PATTERN, name):
                raise ValidationFailed(
                    f"Only X- headers may be set; {name!r} is not allowed.",
                    code="invalid_header",
                    details={"header": name, "field": "headers"},
                )
        return super().to_internal_value(data)


class _Content(InputSerializer):
    """``body`` and/or ``html``: at least one."""

    error_codes = _SENDING_CODES
    body = StrictCharField(required=False, allow_blank=True, allow_null=True, help_text="body or html is required")
    html = StrictCharField(required=False, allow_blank=True, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("body") is None and attrs.get("html") is None:
            raise ValidationFailed("body or html is required.", code="missing_field", details={"field": "body"})
        return attrs


_ONE_OF_BODY_OR_HTML = {
    "anyOf": [
        {"required": ["body"], "properties": {"body": {"type": "string"}}},
        {"required": ["html"], "properties": {"html": {"type": "string"}}},
    ]
}


class _ListOptions(TypedDict):
    help_text: str
    required: bool
    max_length: int


_ATTACHMENT_IDS = _ListOptions(help_text="AttachmentIDs of completed uploads", required=False, max_length=100)


# format send-at: an RFC 3339 date-time with an offset that must also lie in the next 30 days,
# a rule about the clock that no schema can state (tests/schemathesis_hooks.py supplies them).
@extend_schema_field(
    {
        "type": "string",
        "format": "send-at",
        "description": "RFC 3339 date-time with an offset, in the future, at most 30 days ahead",
    }
)
class SendAtField(serializers.Field[dt.datetime, str, str, Any]):
    """When to send (RFC 3339 with an offset): the message is ``scheduled`` until then.
    Whether it is in the future and near enough is the service's rule (``mail.outbound``)."""

    default_error_messages = {"invalid_send_at": "send_at must be an RFC 3339 date-time with an offset."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def to_internal_value(self, data: Any) -> dt.datetime:
        try:
            value = dt.datetime.fromisoformat(data) if isinstance(data, str) and "T" in data.upper() else None
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            self.fail("invalid_send_at")
            raise AssertionError  # unreachable; fail() raises
        return value

    def to_representation(self, value: dt.datetime) -> str:
        return value.isoformat()


class SendInput(_Content):
    """The body of POST /v1/send."""

    schema_extra = _ONE_OF_BODY_OR_HTML
    to = AddressesField()
    cc = OptionalAddressesField()
    bcc = OptionalAddressesField()
    reply_to = OptionalAddressesField()
    subject = HeaderTextField(allow_blank=True)
    headers = ExtraHeadersField(required=False)
    attachments = serializers.ListField(child=StrictCharField(max_length=64), **_ATTACHMENT_IDS)
    send_at = SendAtField()

    class Meta:
        ref_name = "SendRequest"


class ReplyInput(_Content):
    """The body of POST /v1/messages/{id}/reply."""

    schema_extra = _ONE_OF_BODY_OR_HTML
    reply_all = StrictBooleanJSONField(required=False, default=False)
    attachments = serializers.ListField(child=StrictCharField(max_length=64), **_ATTACHMENT_IDS)
    send_at = SendAtField()

    class Meta:
        ref_name = "ReplyRequest"


class DraftUpdateInput(InputSerializer):
    """The body of PATCH /v1/drafts/{id}: any field of a send; the ones left out keep their value."""

    error_codes = _SENDING_CODES
    to = OptionalAddressesField()
    cc = OptionalAddressesField()
    bcc = OptionalAddressesField()
    reply_to = OptionalAddressesField()
    subject = HeaderTextField(allow_blank=True, required=False)
    body = StrictCharField(required=False, allow_blank=True, allow_null=True)
    html = StrictCharField(required=False, allow_blank=True, allow_null=True)
    headers = ExtraHeadersField(required=False)
    attachments = serializers.ListField(child=StrictCharField(max_length=64), **_ATTACHMENT_IDS)
    send_at = SendAtField(allow_null=True)

    class Meta:
        ref_name = "DraftUpdateRequest"


class DraftInput(DraftUpdateInput):
    """The body of POST /v1/drafts: the send body (nothing required yet), or a reply to a
    message of the agent's (``in_reply_to``), which starts with the reply's recipients."""

    in_reply_to = StrictCharField(required=False, max_length=40, help_text="a MessageID of this agent's mailbox")
    reply_all = StrictBooleanJSONField(required=False, default=False)

    class Meta:
        ref_name = "DraftRequest"


class ForwardInput(InputSerializer):
    """The body of POST /v1/messages/{id}/forward."""

    error_codes = _SENDING_CODES
    to = AddressesField()
    body = StrictCharField(
        required=False, allow_blank=True, allow_null=True, help_text="a note above the forwarded message"
    )
    send_at = SendAtField()

    class Meta:
        ref_name = "ForwardRequest"


# --- Input of the attachments API ---------------------------------------------------------------

# What mail.parsing.sanitize_filename leaves non-empty: a last path component with at least
# one character that is not white space, a dot or a control or format character.
FILENAME_PATTERN = "^[^\\x00]*[^\\s./\\\\\\p{C}][^/\\\\\\x00]*$"
CONTENT_TYPE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"


def _filename_validate(value: str) -> None:
    if not sanitize_filename(value):
        raise serializers.ValidationError("A non-empty file name is required.")


@extend_schema_field({"type": "string", "maxLength": 1000, "pattern": FILENAME_PATTERN})
class FilenameField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=1000, validators=[_filename_validate], **kwargs)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": settings.MAX_ATTACHMENT_BYTES})
class AttachmentSizeField(StrictIntegerField):
    """Over MAX_ATTACHMENT_BYTES is mail.attachments' 413 attachment_too_large."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, **kwargs)


class AttachmentCreateInput(InputSerializer):
    """Reserve an upload: what the bytes will be."""

    filename = FilenameField(help_text="shown and sent sanitised: the last path component, no control characters")
    content_type = StrictCharField(
        validators=[RegexValidator(CONTENT_TYPE_PATTERN, "A media type such as application/pdf is required.")],
        help_text="a media type such as application/pdf",
    )
    size = AttachmentSizeField(help_text="in bytes")
    sha256 = StrictCharField(
        required=False,
        allow_null=True,
        validators=[RegexValidator("^[0-9A-Fa-f]{64}$", "The SHA-256 of the bytes, as 64 hexadecimal characters.")],
        help_text="64 hexadecimal characters",
    )

    class Meta:
        ref_name = "AttachmentCreate"


# --- Threads and batch (GET /v1/threads, PATCH /v1/threads/{id}/..., /v1/messages?ids=, batch) ---

MAX_BATCH_IDS = 100


def thread_item(thread: Thread) -> dict[str, Any]:
    """A thread as GET /v1/threads lists it (API.md, Threads)."""
    return {
        "ThreadID": thread.thread_id,
        "Subject": thread.subject,
        "Participants": list(thread.participants),
        "MessageCount": thread.message_count,
        "UnreadCount": thread.unread_count,
        "Labels": list(thread.labels),
        "FirstMessageAt": rfc3339(thread.first_message_at),
        "LastMessageAt": rfc3339(thread.last_message_at),
        "LastMessageID": thread.last_message_id,
        "LastMessagePreview": thread.last_message_preview,
    }


class ThreadsQuerySerializer(PageQuerySerializer):
    """Query parameters of GET /v1/threads: the inbox's filters, applied to threads."""

    q = SearchQueryField(help_text="threads with a message matching the inbox's search")
    label = LabelQueryField(help_text="threads with a message carrying this label (exact)")  # type: ignore[assignment]  # a field, not Field.label: see LabelQueryField
    is_read = StrictBooleanField(required=False, help_text="false: threads with an unread message; true: without")
    include_archived = StrictBooleanField(
        required=False, default=False, help_text="include threads whose messages are all archived"
    )


def _message_ids(ids: list[str]) -> list[str]:
    """Distinct, in the order given; at most MAX_BATCH_IDS."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise ValidationFailed("ids must name at least one message.", code="validation_error", details={"field": "ids"})
    if len(unique) > MAX_BATCH_IDS:
        raise _too_many_ids(len(unique))
    return unique


def _too_many_ids(given: int) -> ValidationFailed:
    return ValidationFailed(
        f"At most {MAX_BATCH_IDS} ids at once.",
        code="too_many_ids",
        details={"field": "ids", "max": MAX_BATCH_IDS, "given": given},
    )


class MessagesQuerySerializer(serializers.Serializer[Any]):
    """Query parameters of GET /v1/messages: the ids to read."""

    ids = serializers.CharField(
        trim_whitespace=False, max_length=MAX_BATCH_IDS * 41, help_text="MessageIDs separated by commas, at most 100"
    )

    def validate_ids(self, value: str) -> list[str]:
        return _message_ids([part.strip() for part in value.split(",") if part.strip()])


class BatchUpdateInput(InputSerializer):
    """Changes to apply to every listed message, in one transaction. At least one change."""

    ids = serializers.ListField(child=StrictCharField(max_length=64), max_length=MAX_BATCH_IDS, help_text="MessageIDs")
    add_labels = serializers.ListField(child=LabelField(), required=False, default=list, max_length=100)
    remove_labels = serializers.ListField(child=LabelField(), required=False, default=list, max_length=100)
    is_read = StrictBooleanJSONField(required=False)
    archived = StrictBooleanJSONField(required=False)

    class Meta:
        ref_name = "BatchUpdate"

    def to_internal_value(self, data: Any) -> Any:
        # Before the list's own max_length (validation_error): the same code as GET's ids.
        if isinstance(data, dict) and isinstance(data.get("ids"), list) and len(data["ids"]) > MAX_BATCH_IDS:
            raise _too_many_ids(len(data["ids"]))
        return super().to_internal_value(data)

    def validate_ids(self, value: list[str]) -> list[str]:
        return _message_ids(value)

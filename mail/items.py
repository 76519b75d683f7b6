"""The inbox item's fields, in one table (API.md, "Inbox item").

Each row names an API field, the model columns it reads and how it is rendered, and says
how the OpenAPI schema documents it. Everything that knows the item's shape is driven by
these tables: the columns a listing loads (``MessageQuerySet.as_items``), the related rows
read with it (``MessageQuerySet.with_item_relations``), the item itself
(``mail.serializers.message_item``) and its schema (``mail.api.schema.InboxItemSchema``).
A new field is one row here.

"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A mail.models.Message. Not imported, even for type checking: mail.models imports the
# querysets, which read this table.
Message = Any


@dataclass(frozen=True)
class Schema:
    """How the OpenAPI schema documents a field: ``kind`` is one of string, choice,
    integer, boolean, datetime, strings (a list of strings), json (any JSON value),
    object (``fields`` of another table) or objects (a list of them)."""

    kind: str
    blank: bool = False
    choices: tuple[str, ...] = ()
    fields: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Related:
    """Rows of another table that an item shows, read with the message: the
    ``columns`` of ``relation``'s rows, as a list of values (one column) or of dicts."""

    relation: str
    columns: tuple[str, ...]
    # The name with_item_relations() gives them on each message.
    attr: str

    def rows_of(self, objects: Sequence[Any]) -> list[Any]:
        if len(self.columns) == 1:
            return [getattr(obj, self.columns[0]) for obj in objects]
        return [{name: getattr(obj, name) for name in self.columns} for obj in objects]


# The related rows of an item, by relation: label names; attachment rows.
Rows = Mapping[str, list[Any]]


@dataclass(frozen=True)
class ItemField:
    name: str
    render: Callable[[Message, Rows], Any]
    schema: Schema
    # The model columns render() reads: what a listing loads (agent__agent_id: the join).
    columns: tuple[str, ...] = ()
    related: Related | None = None


@dataclass(frozen=True)
class SubField:
    """A field of an object inside the item (an attachment, the authentication verdicts)."""

    name: str
    key: str
    schema: Schema = field(default_factory=lambda: Schema("string"))


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _column(name: str) -> Callable[[Message, Rows], Any]:
    def render(message: Message, rows: Rows) -> Any:
        return getattr(message, name)

    return render


def _list(name: str) -> Callable[[Message, Rows], Any]:
    def render(message: Message, rows: Rows) -> Any:
        return list(getattr(message, name))

    return render


AUTHENTICATION_FIELDS = tuple(SubField(key, key, Schema("json")) for key in ("spf", "dkim", "dmarc", "aligned"))

ATTACHMENT_FIELDS = (
    SubField("AttachmentID", "id"),
    SubField("Filename", "filename", Schema("string", blank=True)),
    SubField("ContentType", "content_type"),
    SubField("Size", "size", Schema("integer")),
    SubField("ContentID", "content_id", Schema("string", blank=True)),
    SubField("Disposition", "disposition", Schema("string", blank=True)),
)
# An item's attachments are in the order of the parts (uploads sent by the agent: in upload
# order), by these columns.
ATTACHMENT_ORDER = ("part_index", "created_at", "id")

LABELS = Related("labels", ("name",), "item_labels")
ATTACHMENTS = Related(
    "attachments",
    tuple(dict.fromkeys([*(sub.key for sub in ATTACHMENT_FIELDS), *ATTACHMENT_ORDER])),
    "item_attachments",
)


def _attachment_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    # From with_item_relations() created_at is text in one format per database, UTC, the
    # fraction left out when zero: its text order is the timestamps' order.
    return (row["part_index"] or 0, row["created_at"], row["id"])


def _attachments(message: Message, rows: Rows) -> list[dict[str, Any]]:
    return [
        {sub.name: row[sub.key] for sub in ATTACHMENT_FIELDS}
        for row in sorted(rows[ATTACHMENTS.relation], key=_attachment_key)
    ]


def _agent_id(message: Message, rows: Rows) -> Any:
    return message.agent.agent_id


def _received_at(message: Message, rows: Rows) -> str | None:
    return rfc3339(message.received_at)


def _labels(message: Message, rows: Rows) -> list[str]:
    return sorted(rows[LABELS.relation])


def _authentication(message: Message, rows: Rows) -> dict[str, Any]:
    return {sub.name: message.authentication.get(sub.key) for sub in AUTHENTICATION_FIELDS}


STRING, BLANK = Schema("string"), Schema("string", blank=True)
BOOLEAN = Schema("boolean")

ITEM_FIELDS: tuple[ItemField, ...] = (
    ItemField("MessageID", _column("id"), STRING, ("id",)),
    ItemField("AgentID", _agent_id, STRING, ("agent__agent_id",)),
    ItemField("Direction", _column("direction"), Schema("choice", choices=("inbound", "outbound")), ("direction",)),
    ItemField("Status", _column("status"), STRING, ("status",)),
    ItemField("From", _column("from_header"), BLANK, ("from_header",)),
    ItemField("Sender", _column("sender"), BLANK, ("sender",)),
    ItemField("To", _list("to"), Schema("strings"), ("to",)),
    ItemField("Cc", _list("cc"), Schema("strings"), ("cc",)),
    ItemField("Subject", _column("subject"), BLANK, ("subject",)),
    ItemField("BodyPreview", _column("body_preview"), BLANK, ("body_preview",)),
    ItemField("ReceivedAt", _received_at, Schema("datetime"), ("received_at",)),
    ItemField("SenderVerified", _column("sender_verified"), BOOLEAN, ("sender_verified",)),
    ItemField("Authentication", _authentication, Schema("object", fields=AUTHENTICATION_FIELDS), ("authentication",)),
    ItemField("Labels", _labels, Schema("strings"), related=LABELS),
    ItemField("IsRead", _column("is_read"), BOOLEAN, ("is_read",)),
    ItemField("Archived", _column("archived"), BOOLEAN, ("archived",)),
    ItemField("Disposition", _column("disposition"), STRING, ("disposition",)),
    ItemField("ThreadID", _column("thread_id"), BLANK, ("thread_id",)),
    ItemField("InternetMessageID", _column("internet_message_id"), BLANK, ("internet_message_id",)),
    ItemField("Attachments", _attachments, Schema("objects", fields=ATTACHMENT_FIELDS), related=ATTACHMENTS),
    ItemField("Size", _column("size"), Schema("integer"), ("size",)),
)

# The columns an item reads: all that a listing loads (as_items()).
ITEM_COLUMNS = tuple(column for item_field in ITEM_FIELDS for column in item_field.columns)
# The related rows an item shows, read with the listing (with_item_relations()).
ITEM_RELATED = tuple(item_field.related for item_field in ITEM_FIELDS if item_field.related)


def item_render(message: Message, rows: Rows) -> dict[str, Any]:
    """The item of ``message``, whose related rows are ``rows`` (by relation)."""
    return {item_field.name: item_field.render(message, rows) for item_field in ITEM_FIELDS}

"""Keyset pagination shared by every listing of messages (inbox, sent, threads).

The cursor is opaque to clients but is simply the (received_at, id) of the last item
returned, base64url-encoded; listings continue strictly after it, so messages that
arrive or change while a client pages never make it skip or repeat an item.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from assmbl.errors import ValidationFailed

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None
    has_more: bool


def cursor_encode(received_at: dt.datetime, message_id: str) -> str:
    payload = json.dumps([received_at.astimezone(dt.UTC).isoformat(), message_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[dt.datetime, str]:
    """The (received_at, id) a cursor stands for; anything else is a 400 ``invalid_cursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        received_at_text, message_id = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        received_at = dt.datetime.fromisoformat(received_at_text)
        if received_at.tzinfo is None or not isinstance(message_id, str) or not message_id:
            raise ValueError("incomplete cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("The cursor is not valid.", code="invalid_cursor", details={"cursor": cursor}) from None
    return received_at, message_id


def limit_parse(value: str | None, *, default: int = DEFAULT_LIMIT) -> int:
    """``limit`` must be 1..100: out-of-range is a 400, never a silent clamp (API.md)."""
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be a whole number from 1 to {MAX_LIMIT}.", code="invalid_limit", details={"limit": value}
        )
    return limit


def query_params_check(params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter: {', '.join(unknown)}.", code="unknown_parameter", details={"unknown": unknown}
        )


def page_after(queryset: Any, *, limit: int, cursor: str | None) -> Page:
    """One page of a MessageQuerySet in listing order, after the cursor if given."""
    if cursor:
        queryset = queryset.after(*cursor_decode(cursor))
    rows = list(queryset.in_listing_order()[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor_encode(rows[-1].received_at, rows[-1].id) if has_more else None
    return Page(items=rows, next_cursor=next_cursor, has_more=has_more)

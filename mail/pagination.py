"""Keyset pagination shared by every listing of messages (inbox, sent, threads).

The cursor (``assmbl.query``) is opaque to clients but is the (received_at, id) of the last
item returned; listings continue strictly after it, so messages that change while a client
pages never make it skip or repeat an item. received_at is the SMTP 250's time, not the
commit's: two ingest workers can commit a mail after a later one, and a page served between
the two has passed the earlier one's position (docs/api.md says so, and points to the event
log, whose cursor is exact). Query strings are validated by
``mail.serializers.PageQuerySerializer`` and its subclasses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from assmbl.query import cursor_encode
from mail.serializers import message_item


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None
    has_more: bool

    def body(self) -> dict[str, Any]:
        return {
            "items": [message_item(m) for m in self.items],
            "next_cursor": self.next_cursor,
            "has_more": self.has_more,
        }


def page_after(queryset: Any, *, limit: int, after: tuple[dt.datetime, str] | None = None) -> Page:
    """One page of a MessageQuerySet in listing order, strictly after ``after`` if given.
    One extra row tells whether there is a next page, without a COUNT."""
    if after:
        queryset = queryset.after(*after)
    return page_of(list(queryset.in_listing_order()[: limit + 1]), limit=limit)


def page_of(rows: list[Any], *, limit: int) -> Page:
    """The page of ``limit`` items from the first ``limit + 1`` rows in listing order."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor_encode(rows[-1].received_at, rows[-1].id) if has_more else None
    return Page(items=rows, next_cursor=next_cursor, has_more=has_more)

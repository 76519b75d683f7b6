"""Query strings and keyset cursors shared by every listing endpoint (inbox, agents)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from rest_framework.request import Request

from assmbl.errors import ValidationFailed


def query_params(request: Request, serializer_class: type[Any]) -> dict[str, Any]:
    """Validate the query string; a parameter the endpoint does not know is a 400, so a
    typo (``is_unread=1``) is never silently ignored."""
    allowed = set(serializer_class().fields)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter: {unknown[0]}.", code="unknown_parameter", details={"unknown": unknown}
        )
    serializer = serializer_class(data={key: request.query_params[key] for key in request.query_params})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def cursor_encode(received_at: dt.datetime, message_id: str) -> str:
    raw = json.dumps([rfc3339_micro(received_at), message_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def rfc3339_micro(value: dt.datetime) -> str:
    # Full microseconds: the cursor must land exactly on the row it came from.
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cursor_decode(cursor: str) -> tuple[dt.datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        received_at, message_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        when = dt.datetime.strptime(received_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        if not isinstance(message_id, str) or not message_id:
            raise ValueError
        return when, message_id
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise ValidationFailed("The cursor is not valid.", code="invalid_cursor") from None

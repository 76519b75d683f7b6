"""What staff see of a message: headers, text and a sanitised HTML body, taken from the
stored raw MIME. Hostile HTML is cleaned with nh3 and then shown in a sandboxed iframe
whose own response carries a CSP that forbids scripts and remote loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nh3

from mail.models import Message
from mail.parsing import decode_header_value, header_text, parse_message_object, part_text, walk_parts
from mail.storage import raw_read

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) | {"img", "center", "font", "span", "div", "table", "tbody", "thead", "tr", "td", "th"}
_ALLOWED_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "width", "height"},
    "*": {"style", "align", "width"},
}


@dataclass
class Preview:
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html: str | None = None


def sanitize_html(html: str) -> str:
    """Scripts, event handlers, forms, iframes and javascript: URLs are removed by nh3;
    what remains can still try to load remote images, which the iframe's CSP blocks."""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer nofollow",
    )


def message_preview(message: Message, *, max_text: int = 200_000) -> Preview:
    if not message.storage_key:
        return Preview()
    raw = raw_read(message.storage_key, archived=message.archived)
    msg = parse_message_object(raw)
    preview = Preview(headers=[(name, decode_header_value(value)) for name, value in msg.items()])
    try:
        parts = walk_parts(msg)
    except Exception:
        return preview
    for _, part in parts:
        if part.is_multipart() or header_text(part.get("Content-Disposition")).lower().startswith("attachment"):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and not preview.text:
            preview.text = part_text(part)[:max_text]
        elif ctype == "text/html" and preview.html is None:
            preview.html = sanitize_html(part_text(part)[:max_text])
    return preview


def preview_csp(*, allow_remote_images: bool) -> str:
    images = "data: cid: https: http:" if allow_remote_images else "data:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; font-src 'none'; "
        "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox"
    )


def attachment_bytes(message: Message, attachment: Any) -> bytes:
    """The decoded bytes of an inbound attachment, extracted from the raw MIME by position."""
    raw = raw_read(message.storage_key, archived=message.archived)
    parts = walk_parts(parse_message_object(raw))
    if attachment.part_index is None or attachment.part_index >= len(parts):
        return b""
    payload = parts[attachment.part_index][1].get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""

"""What staff see of a message besides its content (which is ``mail.message_content``'s,
as the API serves it): the decoded headers of the stored raw MIME, and the CSP of the
sandboxed iframe that shows the sanitised HTML."""

from __future__ import annotations

from mail.models import Message
from mail.parsing import decode_header_value, parse_message_object
from mail.storage import raw_read


def message_headers(message: Message) -> list[tuple[str, str]]:
    """The top-level headers, decoded, in order; none without a stored raw MIME."""
    if not message.storage_key:
        return []
    msg = parse_message_object(raw_read(message.storage_key, archived=message.archived))
    return [(name, decode_header_value(value)) for name, value in msg.items()]


def preview_csp(*, allow_remote_images: bool) -> str:
    images = "data: cid: https: http:" if allow_remote_images else "data:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; font-src 'none'; "
        "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox"
    )

"""The content service: what a message says, as a model should read it.

``content_extract`` turns a stored message's raw MIME into the contract's fields (Text,
Html, ExtractedText, Codes, Links, Safety, PromptText, BodyPreview);
``attachment_text`` turns an attachment into text. docs/content.md says what each field
holds, how it is computed, and what the extractor gets wrong.

Every input is bounded so a hostile message costs at most a fixed budget: at most
``MAX_PARTS`` MIME parts are looked at, no deeper than ``MAX_DEPTH``; the first
``MAX_TEXT_BYTES`` of the text body and ``MAX_HTML_BYTES`` of the HTML body are read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message as EmailMessage
from typing import Any, Protocol

from mail.content.attachments import AttachmentTooLarge, UnsupportedAttachmentType, attachment_text
from mail.content.codes import codes_find
from mail.content.html import RenderedHtml, html_render
from mail.content.prompt import prompt_build
from mail.content.quotes import is_forward, reply_extract
from mail.content.safety import (
    FLAG_ORDER,
    HIDDEN_TEXT,
    INSTRUCTIONS_TO_MODEL,
    LINK_TEXT_MISMATCH,
    LOOKALIKE_SENDER,
    instruction_rules_matched,
    lookalike_sender,
)
from mail.content.text import BIDI_CONTROLS, clean_text, decode_bytes
from mail.parsing import decode_header_value, header_text, make_preview, parse_bytes

__all__ = [
    "AttachmentTooLarge",
    "MessageContent",
    "UnsupportedAttachmentType",
    "attachment_text",
    "content_extract",
]

MAX_PARTS = 1000
MAX_DEPTH = 32
MAX_TEXT_BYTES = 256 * 1024
MAX_HTML_BYTES = 256 * 1024
MAX_LINKS = 50
_PLAIN_LINK = re.compile(r"https?://[^\s<>\"'`()\[\]{}]+", re.IGNORECASE)
_BRACKETED_ADDRESS = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_BARE_ADDRESS = re.compile(r"[^\s<>,;\"']+@[^\s<>,;\"']+")
# A zero-width character between two letters splits a word for filters, not for readers.
_ZERO_WIDTH_IN_WORD = re.compile(r"\w[\u200b-\u200d\u2060\ufeff]+\w")


class AttachmentLike(Protocol):
    filename: str
    size: int


@dataclass(frozen=True)
class MessageContent:
    text: str = ""
    html: str | None = None
    extracted_text: str = ""
    codes: tuple[str, ...] = ()
    links: tuple[dict[str, str], ...] = ()
    hidden_text: bool = False
    flags: tuple[str, ...] = ()
    prompt_text: str = ""
    body_preview: str = ""
    # Which instruction rules matched, for staff and tests; not part of the contract.
    instruction_rules: tuple[str, ...] = field(default=(), compare=False)

    @property
    def safety(self) -> dict[str, Any]:
        return {"hidden_text": self.hidden_text, "flags": list(self.flags)}

    def as_api(self) -> dict[str, Any]:
        """The fields as the contract names them."""
        return {
            "Text": self.text,
            "Html": self.html,
            "ExtractedText": self.extracted_text,
            "Codes": list(self.codes),
            "Links": [dict(link) for link in self.links],
            "Safety": self.safety,
            "PromptText": self.prompt_text,
            "BodyPreview": self.body_preview,
        }


def _is_attachment(part: EmailMessage) -> bool:
    disposition = header_text(part.get("Content-Disposition")).split(";", 1)[0].strip().lower()
    if disposition == "attachment":
        return True
    try:
        return bool(part.get_filename())
    except Exception:
        return True


def _part_text(part: EmailMessage, max_bytes: int) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(payload[:max_bytes], charset)


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None]:
    """The first inline text/plain and text/html bodies, depth first, within the bounds."""
    plain: str | None = None
    html: str | None = None
    stack: list[tuple[int, EmailMessage]] = [(0, msg)]
    seen = 0
    while stack and seen < MAX_PARTS and (plain is None or html is None):
        depth, part = stack.pop()
        seen += 1
        if part.is_multipart():
            children = part.get_payload()
            if depth < MAX_DEPTH and isinstance(children, list):
                stack.extend((depth + 1, child) for child in reversed(children) if isinstance(child, EmailMessage))
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html") or _is_attachment(part):
            continue
        if ctype == "text/plain" and plain is None:
            plain = _part_text(part, MAX_TEXT_BYTES)
        elif ctype == "text/html" and html is None:
            html = _part_text(part, MAX_HTML_BYTES)
    return plain, html


def _plain_links(text: str) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for match in _PLAIN_LINK.finditer(text):
        url = match.group().rstrip(".,;:!?")
        if url not in seen:
            seen.add(url)
            links.append({"url": url, "text": ""})
            if len(links) >= MAX_LINKS:
                break
    return links


def _sender_address(from_header: str) -> str:
    """The From address, from a header as stored (decoded: a display name may now hold
    an unquoted comma, which an address-list parser would split at)."""
    bracketed: list[str] = _BRACKETED_ADDRESS.findall(from_header or "")
    if bracketed:
        return bracketed[-1].strip().lower()
    bare = _BARE_ADDRESS.search(from_header or "")
    return bare.group().lower() if bare else ""


def _warnings(
    *,
    subject: str,
    text: str,
    bodies: tuple[str, str],
    rendered: RenderedHtml,
    from_header: str,
    trusted_domains: Sequence[str],
) -> tuple[bool, list[str], tuple[str, ...]]:
    """What a model should be warned of: (text hidden from humans, the instruction rules
    matched, the flags in FLAG_ORDER). ``bodies``: the plain and HTML bodies as sent."""
    hidden = bool(rendered.hidden) or any(
        BIDI_CONTROLS.search(body) or _ZERO_WIDTH_IN_WORD.search(body) for body in bodies
    )
    rules = instruction_rules_matched("\n".join([subject, text, *rendered.hidden]))
    flags = {
        HIDDEN_TEXT: hidden,
        INSTRUCTIONS_TO_MODEL: bool(rules),
        LINK_TEXT_MISMATCH: rendered.link_text_mismatch,
        LOOKALIKE_SENDER: lookalike_sender(address=_sender_address(from_header), trusted_domains=trusted_domains),
    }
    return hidden, rules, tuple(name for name in FLAG_ORDER if flags[name])


def content_extract(
    *,
    raw: bytes,
    subject: str,
    from_header: str,
    sender_verified: bool,
    received_at: datetime | None,
    attachments: Sequence[AttachmentLike] = (),
    trusted_domains: Sequence[str] = (),
) -> MessageContent:
    """Every content field of one message. Never raises on what a mail holds: an
    unparsable body gives empty text, and the header block of PromptText is still there."""
    subject = decode_header_value(subject)
    try:
        plain, html = _bodies(parse_bytes(raw))
    except Exception:  # a parser bug or a RecursionError must not fail the read: no body
        plain, html = None, None
    forward = is_forward(subject=subject, text=plain or "")
    has_plain = plain is not None and bool(plain.strip())
    rendered = html_render(html, forward=forward, with_text=not has_plain) if html else RenderedHtml()
    html_out = rendered.html if html else None
    if has_plain:
        text = clean_text(plain or "")
        extracted = reply_extract(text, subject=subject)
    else:
        text = rendered.text
        forward = forward or is_forward(subject=subject, text=text)
        base = rendered.extracted if rendered.extracted is not None and not forward else text
        extracted = reply_extract(base, subject=subject)
    links = rendered.links if html else _plain_links(text)
    hidden, rules, flags = _warnings(
        subject=subject,
        text=text,
        bodies=(plain or "", html or ""),
        rendered=rendered,
        from_header=from_header,
        trusted_domains=trusted_domains,
    )
    from_text = decode_header_value(from_header)
    prompt = prompt_build(
        from_header=from_text,
        sender_verified=sender_verified,
        subject=subject,
        received_at=received_at,
        attachments=[(getattr(a, "filename", "") or "", int(getattr(a, "size", 0) or 0)) for a in attachments],
        extracted_text=extracted,
    )
    return MessageContent(
        text=text,
        html=html_out,
        extracted_text=extracted,
        codes=tuple(codes_find(subject=subject, text=extracted)),
        links=tuple(links),
        hidden_text=hidden,
        flags=flags,
        prompt_text=prompt,
        body_preview=make_preview(extracted),
        instruction_rules=tuple(rules),
    )

"""PromptText: a message as a model should be handed it: a few trusted facts, then the
mail's words inside a fence that says they are data, which the mail cannot close."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime

FENCE_OPEN = "<untrusted_email>"
FENCE_CLOSE = "</untrusted_email>"
MAX_PROMPT_TEXT_CHARS = 100_000

_LT = r"(?:<|&lt;?|&#0*60;?|&#x0*3c;?)"
_GT = r"(?:>|&gt;?|&#0*62;?|&#x0*3e;?)"
# Any tag-like mention of the fence: either bracket, any case, spaces, entities, a slash
# anywhere, separators between the words (untrusted_email, untrusted-email, untrusted email).
_FENCE = re.compile(rf"{_LT}\s*/?\s*/?\s*untrusted[\s_\-.]*e[\s_\-.]*mail\b[^<>]{{0,40}}?(?:{_GT}|$)", re.IGNORECASE)
_FENCE_WORD = re.compile(r"untrusted[\s_\-.]*e[\s_\-.]*mail", re.IGNORECASE)


def _fold(text: str) -> str:
    """Characters that look like ASCII brackets, slashes or letters (fullwidth forms,
    small forms) replaced by them, so a copy of the fence in such letters is found."""
    if text.isascii():
        return text
    return "".join(
        ch
        if ch.isascii()
        else (unicodedata.normalize("NFKC", ch) if len(unicodedata.normalize("NFKC", ch)) == 1 else ch)
        for ch in text
    )


def fence_neutralise(text: str) -> str:
    """``text`` with every copy of the fence made harmless: its brackets become square
    brackets, so it reads as what it is and cannot open or close the real fence."""
    folded = _fold(text)
    if not _FENCE_WORD.search(folded):
        return text
    return _FENCE.sub(_square, folded)


def _square(match: re.Match[str]) -> str:
    word = _FENCE_WORD.search(match.group())
    slash = "/" if "/" in match.group() else ""
    return f"[{slash}{word.group().lower() if word else 'untrusted_email'}]"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _header_value(value: str) -> str:
    return fence_neutralise(" ".join((value or "").split()))[:500]


def prompt_build(
    *,
    from_header: str,
    sender_verified: bool,
    subject: str,
    received_at: datetime | None,
    attachments: Sequence[tuple[str, int]],
    extracted_text: str,
) -> str:
    lines = [
        f"From: {_header_value(from_header)}",
        f"SenderVerified: {'true' if sender_verified else 'false'}",
        f"Subject: {_header_value(subject)}",
    ]
    if received_at is not None:
        lines.append(f"Date: {received_at.isoformat().replace('+00:00', 'Z')}")
    if attachments:
        names = ", ".join(f"{_header_value(name) or '(unnamed)'} ({_size(size)})" for name, size in attachments[:20])
        more = f", and {len(attachments) - 20} more" if len(attachments) > 20 else ""
        lines.append(f"Attachments: {names}{more}")
    body = fence_neutralise(extracted_text[:MAX_PROMPT_TEXT_CHARS])
    return "\n".join(lines) + f"\n{FENCE_OPEN}\n{body}\n{FENCE_CLOSE}"

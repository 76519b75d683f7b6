"""Text as a reader sees it: bytes decoded by their declared charset (or a good guess),
invisible characters removed, whitespace tidied."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

# Zero-width and joiner characters, the soft hyphen, bidi embeddings, overrides and
# isolates, the BOM and the invisible operators: they carry nothing a reader sees and
# are how text is hidden inside words or reordered on screen.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufeff\uffa0]"
)
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Labels mail uses that Python's codecs lack or read too narrowly.
_CHARSET_ALIASES = {
    "big5": "cp950",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-1": "cp1252",  # what senders who say Latin-1 actually write (WHATWG does the same)
    "latin1": "cp1252",
}


# Charsets whose encoded text is all ASCII bytes: ASCII data may still need decoding.
_SEVEN_BIT_CHARSETS = ("iso-2022", "iso2022", "csiso2022", "utf-7", "hz")


def clean_text(text: str) -> str:
    """Invisible characters out, spaces collapsed per line, at most one blank line in a row."""
    text = INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def decode_bytes(data: bytes, charset: str | None) -> str:
    """``data`` as text: UTF-8 when the bytes are valid UTF-8; else the declared charset
    when Python knows it; else (none, unknown, or "US-ASCII" over 8-bit bytes) a detector's guess."""
    label = (charset or "").strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    if label in ("us-ascii", "ascii", "x-unknown", "unknown-8bit", "default"):
        label = ""
    try:
        codecs.lookup(label or "utf-8")
    except LookupError:
        label = ""
    if label.startswith(_SEVEN_BIT_CHARSETS):
        return data.decode(label, "replace")
    if data.isascii():
        return data.decode("ascii")
    try:
        # Text in a legacy charset is almost never valid UTF-8, while UTF-8 labelled with
        # a legacy charset (or with none) is common: valid UTF-8 is read as UTF-8.
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if label:
        # Otherwise a declared charset is taken at its word; an invalid byte becomes U+FFFD.
        return data.decode(label, "replace")
    # The detector's cost grows with its input, so a prefix decides; on a few bytes it
    # guesses wildly, and Windows-1252 is the likeliest legacy charset of unlabelled mail.
    best = from_bytes(data[:32_768]).best() if len(data) >= 200 else None
    return data.decode(best.encoding if best is not None else "cp1252", "replace")

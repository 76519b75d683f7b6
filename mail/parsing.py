"""Parse raw MIME into what the index needs, under limits, never raising.

Uses the stdlib parser with ``policy.compat32``: on a typical 4.5 KB mail it is an order
of magnitude faster than ``policy.default`` + ``get_body()``, and it tolerates far more
broken input. Headers are decoded here by hand; bodies are decoded only for the preview
and attachments' sizes. Anything the limits refuse comes back as ``quarantine_reason``.

The seam: ``parse_mail_stream`` (and ``parse_mail``) return a ``ParsedMail``, what
indexing needs, and ``parse_header_block`` the header fields the SMTP listener reads
(``mail.authn.header_block``), from the ``MailParser`` that ``settings.MAIL_PARSER``
names: "mimetree" (default) builds mail in the usual shape's compat32 tree with
``mail.mimetree``, without the feed parser's line-by-line machinery, and leaves the rest
to the stdlib's parsers; "stdlib" uses the stdlib's parsers for every mail. Both build the
same tree (docs/decisions/0021-mimetree.md; tests/mail/test_parsing.py compares them).
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import hashlib
import io
import re
import signal
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from email.header import Header, decode_header, make_header
from email.message import Message as EmailMessage
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import IO, Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from mail import mimetree
from mail.headers import header_block_end

PREVIEW_CHARS = 256
_WS = re.compile(r"\s+")


@dataclass
class ParsedAttachment:
    part_index: int
    filename: str
    content_type: str
    size: int
    content_id: str
    disposition: str
    sha256: str = ""
    # The decoded bytes, kept only until ingestion stores the part (see mail.attachments).
    # The MIME part itself, decoded only when stored (one at a time: holding every decoded
    # attachment of a large message at once is what drove ingest's peak memory up).
    part: EmailMessage | None = field(default=None, repr=False, compare=False)
    storage_key: str = ""


@dataclass
class ParsedMail:
    from_header: str = ""
    from_name: str = ""
    sender: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    subject: str = ""
    body_preview: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    idempotency_key: str = ""
    auto_submitted: str = ""
    attachments: list[ParsedAttachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    quarantine_reason: str = ""

    @property
    def parse_status(self) -> str:
        if self.quarantine_reason:
            return "failed"
        return "defective" if self.defects else "ok"


class ParseLimitExceeded(Exception):
    pass


class _Budget:
    """A time budget checked between parts, backed by SIGALRM where we can set one
    (the main thread of a worker), so that one pathological part cannot hang the worker."""

    def __init__(self, seconds: float, *, alarm: bool = True) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self._alarm_wanted = alarm
        self._armed = False

    def __enter__(self) -> _Budget:
        if (
            self._alarm_wanted
            and threading.current_thread() is threading.main_thread()
            and hasattr(signal, "setitimer")
        ):
            try:
                self._previous = signal.signal(signal.SIGALRM, self._alarm)
                signal.setitimer(signal.ITIMER_REAL, self.seconds)
                self._armed = True
            except ValueError:
                self._armed = False
        return self

    def _alarm(self, signum: int, frame: Any) -> None:
        raise ParseLimitExceeded(f"parse time budget of {self.seconds:g}s exceeded")

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise ParseLimitExceeded(f"parse time budget of {self.seconds:g}s exceeded")

    def __exit__(self, *exc: object) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


def header_text(value: Any) -> str:
    """A header value as written, as text: raw 8-bit bytes (RFC 6532 puts UTF-8 in headers,
    and the listener advertises SMTPUTF8) decoded as UTF-8, an invalid byte as U+FFFD;
    encoded words left as they are. Addresses are parsed from this, before any encoded
    word is decoded."""
    if value is None:
        return ""
    if isinstance(value, Header):
        # compat32 hands a value with 8-bit bytes back as a Header of charset unknown-8bit,
        # whose str() makes each byte U+FFFD; its chunks hold the bytes as written.
        return b"".join(
            chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogateescape")
            for chunk, _ in decode_header(value)
        ).decode("utf-8", "replace")
    if not isinstance(value, str):
        try:
            return str(value)
        except Exception:
            return ""
    if value.isascii():
        return value
    try:
        # The parsers keep 8-bit bytes as lone surrogates (surrogateescape).
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8", "replace")


# A run of RFC 2047 encoded words with only whitespace between them, which RFC 2047 §6.2
# drops when decoding (the stdlib's decode_header does, given the run alone). Encoded
# text may hold a space, as the stdlib tolerates.
_ENCODED_WORD = r"=\?[^?\s]*\?[qQbB]\?[\x21-\x3e\x40-\x7e ]*?\?="
_ENCODED_WORDS = re.compile(rf"{_ENCODED_WORD}(?:\s+{_ENCODED_WORD})*")


def _decode_words(text: str) -> str:
    """RFC 2047 decoding of text that may hold raw non-ASCII too: ``decode_header`` turns
    non-ASCII text outside encoded words into backslash escapes, so only the runs of
    encoded words go through it."""
    if text.isascii():
        return str(make_header(decode_header(text)))
    out, pos = [], 0
    for match in _ENCODED_WORDS.finditer(text):
        out.append(text[pos : match.start()])
        try:
            out.append(str(make_header(decode_header(match.group()))))
        except Exception:
            out.append(match.group())
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def decode_header_value(value: Any) -> str:
    """A header as text: raw UTF-8 and RFC 2047 words decoded, unknown charsets and
    invalid bytes survived."""
    text = header_text(value)
    try:
        text = _decode_words(text)
    except Exception:
        pass
    # Surrogates come from encoded words in unknown-8bit; they cannot be stored.
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return _WS.sub(" ", text).strip().replace("\x00", "")


def header_mailboxes(values: list[Any]) -> list[tuple[str, str]]:
    """(display name as written, address) of each mailbox of address header values,
    parsed from the headers as written: an encoded word may hide "@", "," or "<", which
    are text once decoded, never address syntax (RFC 2047 §5). Decode the display names
    with ``decode_header_value``."""
    return getaddresses([_WS.sub(" ", header_text(v)) for v in values])


def _addresses(values: list[Any]) -> list[str]:
    result = []
    for _, addr in header_mailboxes(values):
        addr = addr.strip()
        if addr and "@" in addr:
            result.append(addr)
    return result


def _message_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value) or ([value.strip()] if value.strip() else [])


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0
        self.length = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping and self.length < PREVIEW_CHARS * 4:
            self.chunks.append(data)
            self.length += len(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(html[: PREVIEW_CHARS * 64])
        parser.close()
    except Exception:
        return ""
    return " ".join(parser.chunks)


def part_text(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, TypeError):
        return payload.decode("latin-1", "replace")


def make_preview(text: str) -> str:
    """The first PREVIEW_CHARS of the text with whitespace runs collapsed and NULs dropped.

    Collapses a growing prefix rather than the whole body (a few KB for every mail): the
    collapsed prefix is a prefix of the collapsed whole, and once it is longer than
    PREVIEW_CHARS (a run collapses to one space, so the cut keeps no trailing space that a
    strip of the whole would have removed), the rest of the body cannot change the answer."""
    limit = PREVIEW_CHARS * 2
    while True:
        head = _WS.sub(" ", text[:limit].replace("\x00", "")).lstrip()
        if limit >= len(text) or len(head) > PREVIEW_CHARS:
            return head.rstrip()[:PREVIEW_CHARS]
        limit *= 4


def _filename(part: EmailMessage) -> str | None:
    """``part.get_filename()``, which parses the parameters of Content-Disposition and then
    of Content-Type: a part whose two headers never say "name" (the usual text part) has
    none, and that is found without parsing either."""
    # compat32 hands back a Header for a value with raw 8-bit bytes.
    disposition: str | Header = part.get("content-disposition", "")
    ctype: str | Header = part.get("content-type", "")
    if "name" not in str(disposition).lower() and "name" not in str(ctype).lower():
        return None
    if isinstance(disposition, Header) or isinstance(ctype, Header):
        # Raw 8-bit bytes in the parameters (a UTF-8 filename): get_param parses the str()
        # of compat32's Header, one U+FFFD per byte, so the parameters are read from a copy
        # of the two headers as text.
        headers = EmailMessage(policy=email.policy.compat32)
        for name, value in (("Content-Disposition", disposition), ("Content-Type", ctype)):
            if value:
                headers[name] = header_text(value)
        return headers.get_filename()
    return part.get_filename()


def _is_attachment(part: EmailMessage) -> tuple[bool, str]:
    disposition = header_text(part.get("Content-Disposition")).split(";", 1)[0].strip().lower()
    if disposition == "attachment":
        return True, "attachment"
    filename = _filename(part)
    if filename:
        return True, disposition or "inline"
    maintype = part.get_content_maintype()
    if maintype not in ("text", "multipart", "message"):
        return True, disposition or "inline"
    return False, disposition


_UNSAFE_FILENAME_CHARS = re.compile(r'[<>:"|?*]')


def sanitize_filename(value: str, *, max_chars: int | None = None) -> str:
    """A filename safe to show and to put in Content-Disposition: the last path component
    only (no ``../``), no control or bidi-format characters (U+202E spoofs extensions),
    no leading dots, capped in length with its extension kept. "" when nothing is left."""
    if max_chars is None:
        max_chars = getattr(settings, "MAX_ATTACHMENT_FILENAME_CHARS", 150)
    text = unicodedata.normalize("NFC", value or "")
    text = "".join(" " if ch in "\t\r\n" else ch for ch in text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE_FILENAME_CHARS.sub("_", text)
    text = _WS.sub(" ", text).strip().lstrip(". ").rstrip(" ")
    if len(text) > max_chars:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            text = stem[: max_chars - len(ext) - 1].rstrip() + "." + ext
        else:
            text = text[:max_chars]
    return text


def attachment_size(part: EmailMessage) -> int:
    """The decoded size of a leaf part. For base64 it is counted from the encoded text:
    decoding a large attachment only to measure it doubled the parse's peak memory."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return 0
    cte = header_text(part.get("Content-Transfer-Encoding")).strip().lower()
    if cte == "base64":
        chars = len(payload) - sum(payload.count(ws) for ws in ("\r", "\n", " ", "\t"))
        tail = payload[-8:].rstrip()
        padding = len(tail) - len(tail.rstrip("="))
        return max(0, chars * 3 // 4 - padding)
    decoded = part.get_payload(decode=True)
    return len(decoded) if isinstance(decoded, bytes) else 0


def walk_parts(msg: EmailMessage, budget: _Budget | None = None) -> list[tuple[int, EmailMessage]]:
    """Depth-first parts with their depth; raises ParseLimitExceeded past the limits.

    The order is the stable ``part_index`` that attachments are addressed by.
    """
    max_depth, max_parts = settings.MAX_MIME_DEPTH, settings.MAX_MIME_PARTS
    out: list[tuple[int, EmailMessage]] = []
    stack: list[tuple[int, EmailMessage]] = [(0, msg)]
    while stack:
        depth, part = stack.pop()
        if depth > max_depth:
            raise ParseLimitExceeded(f"MIME nesting deeper than {max_depth}")
        out.append((depth, part))
        if len(out) > max_parts:
            raise ParseLimitExceeded(f"more than {max_parts} MIME parts")
        if budget is not None:
            budget.check()
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((depth + 1, child) for child in reversed(children) if isinstance(child, EmailMessage))
    return out


_INDEXED_HEADERS = frozenset(
    ["from", "to", "cc", "reply-to", "subject", "message-id", "in-reply-to", "references"]
    + ["x-agentmail-idempotency-key", "auto-submitted"]
)


def _indexed_headers(msg: EmailMessage) -> dict[str, list[Any]]:
    """The headers the index reads, each name's values in order: ``msg.get(name)`` is the
    first, ``msg.get_all(name)`` all of them, in one pass over the block instead of one
    per name."""
    values: dict[str, list[Any]] = {}
    fetch = msg.policy.header_fetch_parse
    for name, value in msg.raw_items():
        key = name.lower()
        if key in _INDEXED_HEADERS:
            values.setdefault(key, []).append(fetch(name, value))
    return values


def _parse_headers(msg: EmailMessage, parsed: ParsedMail) -> None:
    headers = _indexed_headers(msg)

    def first(name: str) -> str:
        return decode_header_value(headers[name][0]) if name in headers else ""

    parsed.from_header = first("from")
    mailboxes = header_mailboxes(headers["from"][:1]) if "from" in headers else []
    name, addr = mailboxes[0] if mailboxes else ("", "")
    parsed.from_name = decode_header_value(name)[:300]
    parsed.sender = addr.strip().lower()[:320] if "@" in addr else ""
    parsed.to = _addresses(headers.get("to", []))
    parsed.cc = _addresses(headers.get("cc", []))
    parsed.reply_to = _addresses(headers.get("reply-to", []))
    parsed.subject = first("subject")
    parsed.message_id = first("message-id")[:998]
    in_reply_to = _message_ids(first("in-reply-to"))
    parsed.in_reply_to = in_reply_to[0][:998] if in_reply_to else ""
    parsed.references = [ref[:998] for ref in _message_ids(first("references"))][-50:]
    parsed.idempotency_key = first("x-agentmail-idempotency-key")[:255]
    parsed.auto_submitted = first("auto-submitted")[:40]


def _parse_body(msg: EmailMessage, parsed: ParsedMail, budget: _Budget) -> None:
    plain, html = None, None
    for index, (_, part) in enumerate(walk_parts(msg, budget)):
        if part.is_multipart():
            continue
        is_attachment, disposition = _is_attachment(part)
        if is_attachment:
            parsed.attachments.append(
                ParsedAttachment(
                    part_index=index,
                    filename=sanitize_filename(decode_header_value(_filename(part) or ""))[:255],
                    content_type=part.get_content_type()[:255],
                    size=attachment_size(part),
                    content_id=decode_header_value(part.get("Content-ID") or "").strip("<>")[:255],
                    disposition=disposition[:10],
                    part=part,
                )
            )
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = part_text(part)
        elif ctype == "text/html" and html is None:
            html = part_text(part)
    text = plain if plain and plain.strip() else html_to_text(html or "")
    parsed.body_preview = make_preview(text)


_FEED_CHUNK = 64 * 1024
# mail.mimetree decodes the whole message to one str: at most this much, so the chunked
# feed keeps its memory bound (see parse_bytes) for large messages.
_FAST_TREE_BYTES = 1024 * 1024


def parse_bytes(raw: bytes) -> EmailMessage:
    """The whole message's compat32 tree, from the configured parser."""
    return mail_parser().parse_message(raw)


def _feed_parse(raw: bytes) -> EmailMessage:
    """The stdlib parse, fed in chunks. ``parsebytes`` first decodes the whole message into
    one str and then splits it, which peaks near 8x the message size; feeding 64 KB at a
    time keeps the peak under 3x (measured on a 6.8 MB message)."""
    parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
    view = memoryview(raw)
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(bytes(view[start : start + _FEED_CHUNK]))
    return parser.close()


class HashingReader:
    """Wraps a binary stream: counts and hashes what is read, so the worker learns a
    stored object's size and sha256 in the same pass that parses it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_FEED_CHUNK):
            pass


def parse_mail(raw: bytes) -> ParsedMail:
    """Everything the index needs from raw bytes. Never raises; see quarantine_reason."""
    return parse_mail_stream(io.BytesIO(raw))


def parse_mail_stream(stream: IO[bytes] | HashingReader) -> ParsedMail:
    """As parse_mail, reading a stream in chunks, so a large message is never held whole
    beside its parse tree (the worker streams it from storage)."""
    return mail_parser().parse_stream(stream)


def parse_header_block(head: bytes) -> EmailMessage:
    """The header fields of ``head`` (a mail's header block) from the configured parser,
    as ``BytesHeaderParser(policy=compat32)`` returns them."""
    return mail_parser().parse_header_block(head)


class MailParser(Protocol):
    """What indexing and the SMTP listener need from raw MIME: the one interface they
    parse through."""

    def parse_stream(self, stream: IO[bytes] | HashingReader) -> ParsedMail:
        """The index's fields of the mail read from ``stream``. Never raises."""
        ...

    def parse_message(self, raw: bytes) -> EmailMessage:
        """The whole compat32 tree, for lazy work on stored mail (attachments, content)."""
        ...

    def parse_header_block(self, head: bytes) -> EmailMessage:
        """What ``email.parser.BytesHeaderParser(policy=compat32)`` returns for ``head``:
        the header fields of a mail (its header block, or the whole mail when it has no
        blank line), undecoded. The SMTP listener reads a few fields of every mail."""
        ...


class StdlibParser:
    """The stdlib's parsers (``policy=compat32``) for every mail: the feed parser, and the
    header parser for a header block."""

    def whole_tree(self, raw: bytes) -> EmailMessage | None:
        """The tree of a whole mail in hand built without the feed parser, or None."""
        return None

    def parse_stream(self, stream: IO[bytes] | HashingReader) -> ParsedMail:
        return _parse_stream(stream, self.whole_tree)

    def parse_message(self, raw: bytes) -> EmailMessage:
        msg = self.whole_tree(raw) if len(raw) <= _FAST_TREE_BYTES else None
        return msg if msg is not None else _feed_parse(raw)

    def header_fields(self, head: bytes) -> EmailMessage | None:
        """The header block built without the stdlib's header parser, or None."""
        return None

    def parse_header_block(self, head: bytes) -> EmailMessage:
        msg = self.header_fields(head)
        return msg if msg is not None else email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)


class MimetreeParser(StdlibParser):
    """``mail.mimetree`` builds the tree and the header block of mail in the usual shape;
    the stdlib's parsers the rest."""

    def whole_tree(self, raw: bytes) -> EmailMessage | None:
        return mimetree.parse_tree(raw)

    def header_fields(self, head: bytes) -> EmailMessage | None:
        return mimetree.parse_headers(head)


PARSERS: dict[str, MailParser] = {"mimetree": MimetreeParser(), "stdlib": StdlibParser()}


def mail_parser() -> MailParser:
    """The parser ``settings.MAIL_PARSER`` names (read on each call: tests switch it)."""
    name = settings.MAIL_PARSER
    try:
        return PARSERS[name]
    except KeyError:
        raise ImproperlyConfigured(f"MAIL_PARSER is {name!r}; it must be one of {', '.join(PARSERS)}") from None


def _parse_stream(stream: IO[bytes] | HashingReader, whole_tree: Callable[[bytes], EmailMessage | None]) -> ParsedMail:
    parsed = ParsedMail()
    head = stream.read(settings.MAX_HEADER_BYTES + 4)
    end = header_block_end(head)
    header_len = end[0] if end else len(head)
    if header_len > settings.MAX_HEADER_BYTES:
        parsed.quarantine_reason = f"header block larger than {settings.MAX_HEADER_BYTES} bytes"
        return parsed
    try:
        chunk = stream.read(_FEED_CHUNK)
        # The whole mail in hand: the parser may build its tree without the feed parser
        # (mimetree's one linear pass over the text needs no alarm to bound it).
        msg = whole_tree(head) if not chunk else None
        with _Budget(settings.PARSE_TIME_BUDGET_SECONDS, alarm=msg is None) as budget:
            if msg is None:
                parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
                parser.feed(head)
                total = len(head)
                del head
                while chunk:
                    total += len(chunk)
                    if total > settings.MAX_MESSAGE_BYTES:
                        raise ParseLimitExceeded(f"message larger than {settings.MAX_MESSAGE_BYTES} bytes")
                    parser.feed(chunk)
                    chunk = stream.read(_FEED_CHUNK)
                msg = parser.close()
                budget.check()
            _parse_headers(msg, parsed)
            parsed.defects = [type(d).__name__ for d in msg.defects][:20]
            _parse_body(msg, parsed, budget)
    except ParseLimitExceeded as exc:
        parsed.quarantine_reason = str(exc)
    except RecursionError:
        parsed.quarantine_reason = "MIME structure too deeply nested to parse"
    except Exception as exc:  # a parser bug must not lose the message: quarantine it
        parsed.quarantine_reason = f"parser error: {type(exc).__name__}: {exc}"[:500]
    return parsed


_B64_CHUNK = 1024 * 1024


def part_decode_to(part: EmailMessage, out: IO[bytes]) -> tuple[str, int]:
    """Write a leaf part's decoded bytes to ``out``; returns (sha256, size).

    Large base64 parts (what big attachments are) are decoded a megabyte at a time:
    compat32's get_payload(decode=True) first copies the whole encoded text to bytes.
    Broken base64 falls back to the stdlib's lenient decoder, as small parts always do."""
    payload = part.get_payload()
    cte = header_text(part.get("Content-Transfer-Encoding")).strip().lower()
    if cte == "base64" and isinstance(payload, str) and len(payload) >= 4 * _B64_CHUNK:
        start = out.tell()
        try:
            return _decode_base64_to(payload, out)
        except binascii.Error:
            out.seek(start)
            out.truncate()
    decoded = part.get_payload(decode=True)
    if not isinstance(decoded, bytes):
        decoded = b""
    out.write(decoded)
    return hashlib.sha256(decoded).hexdigest(), len(decoded)


def _decode_base64_to(payload: str, out: IO[bytes]) -> tuple[str, int]:
    digest, size, carry = hashlib.sha256(), 0, ""
    for start in range(0, len(payload), _B64_CHUNK):
        text = carry + "".join(payload[start : start + _B64_CHUNK].split())
        usable = len(text) - len(text) % 4
        data = binascii.a2b_base64(text[:usable], strict_mode=True)
        carry = text[usable:]
        digest.update(data)
        size += len(data)
        out.write(data)
    if carry:
        raise binascii.Error("base64 text ends mid-quantum")
    return digest.hexdigest(), size


def parse_message_object(raw: bytes) -> EmailMessage:
    """The full stdlib message, for lazy work on stored mail (attachment download)."""
    return parse_bytes(raw)

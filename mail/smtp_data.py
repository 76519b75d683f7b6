"""Reading the message of a DATA command off the SMTP stream, in a few large reads.

aiosmtpd reads DATA a line at a time (``readuntil(b"\\r\\n")``) from a stream reader whose
limit is one line (1,001 bytes), so the socket is paused and resumed again and again for
each mail: a fifth of the listener's CPU per mail (bench/HISTORY.md, eighth session).
``data_read`` reads up to each ``.\\r\\n`` instead (a handful of reads for the usual mail,
from a reader with a larger limit) and gives aiosmtpd's answers: the same content
(dot-unstuffed, RFC 5321 4.5.2), and for a line too long or too much data the same
refusal, decided by the first line at fault in the order aiosmtpd decides it.
tests/mail/test_smtp_data.py compares the two over real sockets.

Two answers differ from aiosmtpd's on purpose. Its limit on a line is RFC 5321's 1,000
octets, but real mail has longer ones (Postfix takes 2,048 and folds the rest), so a
session says how long a line may be (``line_limit``; the listener: ``SMTP_MAX_LINE_BYTES``,
64 KiB), and a line over it is refused with ``552 5.3.4``, a limit on the message, where
aiosmtpd says ``500``, a syntax error.
"""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP

# aiosmtpd's longest DATA line, with its CRLF: what it reads with one ``readuntil``.
TEXT_LINE_LIMIT = SMTP.line_length_limit
# The stream reader's limit in the listener's sessions (``IngestSMTP.line_length_limit``):
# the most a read takes at once, and the buffer at which the socket is paused.
READ_LIMIT = 64 * 1024

REPLY_TOO_LONG = "552 5.3.4 Line too long"
REPLY_TOO_MUCH = "552 Error: Too much mail data"

_DOT_LINE = b".\r\n"
_END = b"\r\n.\r\n"


async def data_read(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int = TEXT_LINE_LIMIT
) -> tuple[bytes, str]:
    """The message up to the line ``.``: ``(content, "")``, or ``(b"", refusal)`` once the
    whole section has been read (aiosmtpd answers a fault only after the end of data, as
    RFC 5321 4.2.5 implies). ``line_limit`` is the longest line with its CRLF, as
    aiosmtpd's ``line_length_limit``. Holds at most ``size_limit`` and a few lines more."""
    # Kept beyond the size limit before the fault is decided, so that the line which
    # crosses the limit is whole (or known to be too long) when it is.
    slack = 2 * line_limit
    chunks: list[bytes] = []
    held = 0
    fault = ""
    tail = b"\r\n"  # the section begins at the start of a line
    while True:
        try:
            chunk = await reader.readuntil(_DOT_LINE)
        except asyncio.LimitOverrunError as error:
            # No ".\r\n" within the reader's limit: take what cannot hold its start.
            chunk = await reader.read(error.consumed)
        end = chunk[-5:] if len(chunk) >= 5 else (tail + chunk)[-5:]
        if not fault:
            chunks.append(chunk)
            held += len(chunk)
            if size_limit and held > size_limit + slack:
                fault = _fault(b"".join(chunks), size_limit, line_limit) or REPLY_TOO_MUCH
                chunks.clear()
        if end == _END:
            break
        tail = end[-2:]
    if fault:
        return b"", fault
    chunks[-1] = chunks[-1][:-3]
    data = b"".join(chunks)
    del chunks
    if (size_limit and len(data) > size_limit) or _longest_line(data, line_limit) > line_limit - 2:
        fault = _fault(data, size_limit, line_limit)
        if fault:
            return b"", fault
    if data.startswith(b"."):
        data = data[1:]
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n")
    return data, ""


def content_refusal(data: bytes, line_limit: int = TEXT_LINE_LIMIT) -> str:
    """The refusal of a message received whole (BDAT chunks, not dot-stuffed) for a line
    longer than ``line_limit`` with its CRLF, as ``data_read`` refuses it, or ""."""
    return REPLY_TOO_LONG if _longest_line(data, line_limit) > line_limit - 2 else ""


def _longest_line(data: bytes, line_limit: int = TEXT_LINE_LIMIT) -> int:
    """The length of the longest CRLF-delimited line of ``data``, without its CRLF (or of
    ``data``, when it is too short to hold a line over ``line_limit``)."""
    if len(data) <= line_limit - 2:
        return len(data)
    if len(data) < 1 << 20:
        return max(map(len, data.split(b"\r\n")))
    # A large message: no copy of it in pieces.
    longest = start = 0
    while (end := data.find(b"\r\n", start)) != -1:
        longest = max(longest, end - start)
        start = end + 2
    return max(longest, len(data) - start)


def _fault(data: bytes, size_limit: int | None, line_limit: int) -> str:
    """The refusal aiosmtpd gives for ``data`` (whole lines, perhaps one unfinished at the
    end), or "". A line whose text is longer than the reader's limit overruns the reader
    before any of it is counted, so it is too long even where it also crosses the size
    limit; a line that fits the reader is counted first, then measured."""
    lines = data.split(b"\r\n")
    unfinished = lines.pop()
    total = 0
    for line in lines:
        if len(line) > line_limit:
            return REPLY_TOO_LONG
        total += len(line) + 2
        if size_limit and total > size_limit:
            return REPLY_TOO_MUCH
        if len(line) + 2 > line_limit:
            return REPLY_TOO_LONG
    # An unfinished line may end with the CR of its CRLF.
    if len(unfinished) > line_limit + 1:
        return REPLY_TOO_LONG
    return ""

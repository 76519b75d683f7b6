"""The stdlib's compat32 parse tree, built without the feed parser for mail in the usual shape.

``email.feedparser`` reads a message line by line through generators, an eof-matcher
stack and a line buffer: half of the worker's parse of a 5 KB mail (bench/ingest.py). Well-formed mail needs none of that machinery: its header blocks end
with a blank line and its multipart bodies are cut by boundary lines found with
``str.find``. ``parse_tree`` builds, for such mail, the very tree the feed parser builds
(the same ``email.message.Message`` objects, headers set through the same
``policy.header_source_parse``, payloads, preambles and epilogues cut at the same
characters) and answers None for anything else: a defect the stdlib would record, a
``message/delivery-status`` or ``multipart/digest`` part, a Unix ``From`` line, a line
break the stdlib splits on but this does not look for. Callers then use the feed parser, so odd mail is
parsed exactly as the stdlib parses it. tests/mail/test_mimetree.py compares both trees over the
broken-mail corpus and generated mail, field by field.
"""

from __future__ import annotations

import email.policy
import re
from email.message import Message

_POLICY = email.policy.compat32

# A header field as the feed parser takes it (its headerRE, without the empty field name
# and the Unix "From " line, which carry defects): a line and its continuation lines.
_FIELD = re.compile(r"[\041-\071\073-\176]+:[^\r\n]*(?:\r\n|\r|\n)(?:[ \t][^\r\n]*(?:\r\n|\r|\n))*")
_BLANK_LINE = re.compile(r"\r\n|\r|\n")
# The feed parser splits lines with str.splitlines, which also breaks at these (non-ASCII
# bytes arrive as surrogates, so \x85 and U+2028 cannot occur). Mail containing them is
# left to it.
_OTHER_LINE_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
# Deeper mail is rare and is where the stdlib's own limits (recursion) matter: leave it.
MAX_DEPTH = 16


class _Decline(Exception):
    """The mail is not in the shape this module builds; the feed parser must."""


def parse_tree(raw: bytes) -> Message | None:
    """What ``email.parser.BytesFeedParser(policy=compat32)`` returns for ``raw``, or None
    when the mail is not in the shape handled here."""
    if any(char in raw for char in _OTHER_LINE_BREAKS):
        return None
    text = raw.decode("ascii", "surrogateescape")
    root = Message(policy=_POLICY)
    try:
        _entity(root, text, 0, len(text), 0)
    except _Decline:
        return None
    return root


def parse_headers(head: bytes) -> Message | None:
    """What ``email.parser.BytesHeaderParser(policy=compat32)`` returns for a header block
    alone (its fields, then nothing or a blank line), or None for anything else. The SMTP
    listener reads a few header fields of every mail on its event loop."""
    if any(char in head for char in _OTHER_LINE_BREAKS):
        return None
    text = head.decode("ascii", "surrogateescape")
    msg = Message(policy=_POLICY)
    if text[_fields(msg, text, 0, len(text)) :] not in ("", "\r\n", "\n", "\r"):
        return None
    msg.set_payload("")
    return msg


def _entity(msg: Message, text: str, start: int, end: int, depth: int) -> tuple[Message, str | None]:
    """Fill ``msg`` from the lines ``text[start:end]``: its headers, then its body.

    Returns the message the feed parser began last while parsing ``msg`` (its ``_last``,
    which takes the line ending before the next boundary) and that message's payload
    text: ``msg`` itself, or for a message/* part the message inside, however deep; the
    payload is None when that message is a multipart (whose epilogue takes the ending)."""
    if depth > MAX_DEPTH:
        raise _Decline
    body = _headers(msg, text, start, end)
    maintype = msg.get_content_maintype()
    if msg.get_content_type() in ("multipart/digest", "message/delivery-status"):
        raise _Decline  # digest's default part type; delivery-status's header blocks
    if maintype == "message":
        # A forward or a bounce: the body is a message of its own, the part's one child.
        inner = Message(policy=_POLICY)
        msg.attach(inner)
        return _entity(inner, text, body, end, depth + 1)
    if maintype == "multipart":
        _multipart(msg, text, body, end, depth)
        return msg, None
    payload = text[body:end]
    msg.set_payload(payload)
    return msg, payload


def _fields(msg: Message, text: str, pos: int, end: int) -> int:
    """Set the header fields starting at ``pos`` on ``msg``; where they end."""
    while field := _FIELD.match(text, pos, end):
        # header_source_parse of the field's lines, given as one: the first line ends in a
        # line break, so its lstrip cannot reach the continuation lines.
        msg.set_raw(*_POLICY.header_source_parse([field.group()]))
        pos = field.end()
    return pos


def _headers(msg: Message, text: str, pos: int, end: int) -> int:
    """Set the header block starting at ``pos`` on ``msg``; the body's start."""
    pos = _fields(msg, text, pos, end)
    blank = _BLANK_LINE.match(text, pos, end)
    if blank is None:
        # Not a blank line: a continuation with nothing to continue, a line that is not a
        # header, or the end of the text; the feed parser records a defect or takes the
        # line as body.
        raise _Decline
    return blank.end()


def _boundary_lines(text: str, separator: str, start: int, end: int) -> list[tuple[int, int, bool, str]]:
    """The boundary lines in ``text[start:end]`` as the feed parser matches them:
    ``separator``, an optional ``--``, blanks and a line ending (or the end)."""
    found = []
    pos = start
    while (pos := text.find(separator, pos, end)) != -1:
        line_start = pos
        pos += len(separator)
        if line_start != start and text[line_start - 1] not in "\r\n":
            continue
        closing = text.startswith("--", pos, end)
        cursor = pos + 2 if closing else pos
        while cursor < end and text[cursor] in " \t":
            cursor += 1
        if cursor == end:
            linesep = ""
        elif text.startswith("\r\n", cursor, end):
            linesep = "\r\n"
        elif text[cursor] in "\r\n":
            linesep = text[cursor]
        else:
            continue
        found.append((line_start, cursor + len(linesep), closing, linesep))
        pos = cursor + len(linesep)
    return found


def _strip_eol(value: str) -> str:
    """The feed parser's ``NLCRE_eol`` cut: one line ending off the end."""
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith(("\r", "\n")):
        return value[:-1]
    return value


def _multipart(msg: Message, text: str, body: int, end: int, depth: int) -> None:
    boundary = msg.get_boundary()
    if boundary is None or "\r" in boundary or "\n" in boundary:
        raise _Decline  # no boundary, or one that no single line can match
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
        raise _Decline
    lines = _boundary_lines(text, "--" + boundary, body, end)
    if not lines or lines[0][2]:
        raise _Decline  # no first boundary, or only a closing one
    if lines[0][0] > body:
        msg.preamble = _strip_eol(text[body : lines[0][0]])
    # Two boundary lines in a row leave an empty part, which has no blank line: declined.
    for index, (_, part_start, closing, _) in enumerate(lines):
        if closing:
            break
        if index + 1 == len(lines):
            raise _Decline  # no closing boundary
        part = Message(policy=_POLICY)
        msg.attach(part)
        last, payload = _entity(part, text, part_start, lines[index + 1][0], depth + 1)
        # The line ending before the boundary belongs to it; an empty epilogue is None.
        # (set_payload of a str without a charset stores it as given; get_payload would
        # not hand back undecodable bytes as they are, so the text is carried here.)
        if payload is None:
            # A multipart's epilogue is a str: _entity sets it from the text (below).
            last.epilogue = None if last.epilogue == "" else _strip_eol(last.epilogue)  # type: ignore[arg-type]  # see above
        else:
            last.set_payload(_strip_eol(payload))
    msg.epilogue = text[lines[index][1] : end]

"""Where a mail's header block ends: the one answer for the SMTP listener, the
authentication checks and the parser.

RFC 5322 2.1: the header fields, then an empty line, then the body. The empty line is the
first line with nothing on it, whichever line ending each of the two lines uses (CRLF as on
the wire, or a bare LF as in a file or a relay that rewrote it: the stdlib's parser accepts
both). A mail that begins with an empty line has no header fields; a mail with no empty line
is all header block and no body.
"""

from __future__ import annotations

import re

# Searched for from its "\n", a literal: much faster over a large body than a pattern that
# begins with an optional "\r".
_EMPTY_LINE = re.compile(rb"\n\r?\n")


def header_block_end(raw: bytes, limit: int | None = None) -> tuple[int, int] | None:
    """(where the line break ending the last header field begins, where the body begins), or
    None when no empty line starts before ``limit``. ``raw[:body]`` is the header block with
    its empty line; ``raw[:fields]`` the fields without their last line break."""
    if raw.startswith(b"\n"):
        return 0, 1
    if raw.startswith(b"\r\n"):
        return 0, 2
    found = _EMPTY_LINE.search(raw, 0, len(raw) if limit is None else limit)
    if found is None:
        return None
    fields = found.start()
    if fields and raw[fields - 1] == 0x0D:
        fields -= 1
    return fields, found.end()

"""MIME boundary lines matched without compiling a regular expression per message.

The stdlib feed parser (``email.feedparser``) compiles one regular expression per
multipart part: ``--boundary`` followed by an optional ``--``, blanks and a line ending.
Boundaries are unique per message, so ``re``'s cache never hits, and compiling costs
about 0.1 ms on these machines: a third of the whole parse of a 5 KB mail
(bench/ingest.py). ``install()`` hands the feed parser a ``re`` whose ``compile`` returns
``BoundaryMatcher`` for exactly that pattern, with the same answers (tests/mail/
test_boundary.py compares every parse tree of the broken-mail corpus both ways), and the
real ``re`` for anything else.
"""

from __future__ import annotations

import email.feedparser
import re
import types
from typing import Any

_PREFIX = "(?P<sep>"
_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_UNESCAPE = re.compile(r"\\(.)", re.S)
_LINE_ENDINGS = ("\r\n", "\r", "\n")


class BoundaryMatch:
    """The part of ``re.Match`` the feed parser reads: ``group(name)``."""

    __slots__ = ("_groups",)

    def __init__(self, groups: dict[str, str | None]) -> None:
        self._groups = groups

    def group(self, name: str) -> str | None:
        return self._groups[name]


class BoundaryMatcher:
    """``re.compile(_PREFIX + re.escape(separator) + _SUFFIX).match``, by string tests."""

    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> BoundaryMatch | None:
        separator = self.separator
        if not line.startswith(separator):
            return None
        start = len(separator)
        end = None
        if line.startswith("--", start):
            end = "--"
            start += 2
        stop, length = start, len(line)
        while stop < length and line[stop] in " \t":
            stop += 1
        rest = line[stop:]
        linesep = None
        for ending in _LINE_ENDINGS:
            if rest.startswith(ending):
                linesep, rest = ending, rest[len(ending) :]
                break
        # "$" without MULTILINE: the end of the line, or just before a final "\n".
        # The first line ending that fits is the regex's only way to match (the others
        # would leave a "\r" or "\n" that "$" cannot pass).
        if rest not in ("", "\n"):
            return None
        return BoundaryMatch({"sep": separator, "end": end, "ws": line[start:stop], "linesep": linesep})


def compile(pattern: Any, flags: int = 0) -> Any:
    """``re.compile``, except for the feed parser's boundary pattern."""
    if flags == 0 and isinstance(pattern, str) and pattern.startswith(_PREFIX) and pattern.endswith(_SUFFIX):
        escaped = pattern[len(_PREFIX) : -len(_SUFFIX)]
        separator = _UNESCAPE.sub(r"\1", escaped)
        if re.escape(separator) == escaped:  # anything we cannot read back goes to re
            return BoundaryMatcher(separator)
    return re.compile(pattern, flags)


def install() -> None:
    """Give ``email.feedparser`` the ``re`` above. Idempotent."""
    if getattr(email.feedparser.re, "compile", None) is compile:
        return
    shim = types.ModuleType("re", "re, with boundary patterns matched by mail.boundary")
    shim.__dict__.update({name: getattr(re, name) for name in dir(re) if not name.startswith("__")})
    shim.compile = compile  # type: ignore[attr-defined]
    email.feedparser.re = shim  # type: ignore[attr-defined]


def uninstall() -> None:
    email.feedparser.re = re  # type: ignore[attr-defined]

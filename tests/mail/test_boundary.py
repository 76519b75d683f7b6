"""mail.boundary gives the stdlib feed parser the same answers as its own regular
expression: line by line, and parse tree by parse tree over the broken-mail corpus."""

from __future__ import annotations

import email.feedparser
import email.parser
import email.policy
import re
from email.message import Message as EmailMessage
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mail import boundary
from tests.mail.corpus import corpus_required, real_mails
from tests.mime import build_mail

_GROUPS = ("sep", "end", "ws", "linesep")


def _stdlib(separator: str) -> re.Pattern[str]:
    # The feed parser's own pattern, as email/feedparser.py builds it.
    return re.compile("(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")


def _answer(match: Any) -> tuple[str | None, ...] | None:
    return None if match is None else tuple(match.group(name) for name in _GROUPS)


_PIECES = st.sampled_from(["--", "-", " ", "\t", "\r", "\n", "\r\n", "x", "=", "(", ".", "*", "\\", "é", "\udcff"])


@settings(max_examples=3000, deadline=None)
@given(
    boundary_text=st.text(st.sampled_from("ab-=_.()+?*\\ '/:é"), min_size=1, max_size=12),
    tail=st.lists(_PIECES, max_size=6),
)
def test_it_matches_every_line_as_the_stdlib_pattern_does(boundary_text: str, tail: list[str]) -> None:
    separator = "--" + boundary_text
    matcher = boundary.compile(_stdlib(separator).pattern)
    assert isinstance(matcher, boundary.BoundaryMatcher)
    for line in (separator + "".join(tail), "".join(tail), separator[:-1] + "".join(tail)):
        assert _answer(matcher.match(line)) == _answer(_stdlib(separator).match(line)), repr(line)


def test_it_leaves_every_other_pattern_to_re() -> None:
    assert isinstance(boundary.compile(r"\r\n|\r|\n"), re.Pattern)
    assert isinstance(boundary.compile("(?P<sep>" + r"--a" + ")", re.I), re.Pattern)


def test_it_is_installed_in_the_feed_parser_when_django_starts() -> None:
    separator = "--===============123=="
    assert isinstance(email.feedparser.re.compile(_stdlib(separator).pattern), boundary.BoundaryMatcher)
    assert email.feedparser.re.escape is re.escape and email.feedparser.re.compile("a|b").match("b")


def _tree(msg: EmailMessage) -> list[Any]:
    shape = []
    for part in msg.walk():
        payload = part.get_payload()
        shape.append(
            (
                part.get_content_type(),
                part.items(),
                part.preamble,
                part.epilogue,
                [type(d).__name__ for d in part.defects],
                payload if isinstance(payload, str) else len(payload),
            )
        )
    return shape


def _parse_both_ways(raw: bytes) -> tuple[list[Any], list[Any]]:
    def parse() -> list[Any]:
        parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
        parser.feed(raw)
        return _tree(parser.close())

    boundary.uninstall()
    try:
        expected = parse()
    finally:
        boundary.install()
    return parse(), expected


def test_it_parses_every_corpus_mail_to_the_same_tree() -> None:
    edge_cases = [
        build_mail(to="a@x.test", sender="b@y.test", attachments=[("a.txt", "text/plain", b"x" * 100)]),
        b'Content-Type: multipart/mixed; boundary="a.b(c)*+?"\r\n\r\npre\r\n--a.b(c)*+? \t\r\n'
        b"Content-Type: text/plain\r\n\r\nbody\r\n--a.b(c)*+?--  \r\n\r\nepilogue\r\n",
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--bX\n--b\r\r\ntwo\n--b--\n",
    ]
    corpus_required()
    raws = edge_cases + real_mails(max_bytes=2_000_000)
    assert len(raws) > 3
    multipart = 0
    for raw in raws:
        fast, expected = _parse_both_ways(raw)
        assert fast == expected
        multipart += len(fast) > 1
    assert multipart >= 3

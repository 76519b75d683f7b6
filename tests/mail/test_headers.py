"""Where a header block ends (mail/headers.py), checked against the three answers the
listener, the authentication checks and the parser used to give, over every corpus mail,
and against the stdlib's parser where they disagreed."""

from __future__ import annotations

import email.parser
import email.policy
import re
from pathlib import Path
from typing import Any

import pytest

from mail.authn import header_block
from mail.headers import header_block_end
from mail.parsing import parse_mail
from tests.mail.corpus import CORPUS_FILES, TESTDATA_FILES, corpus_required

LOOP_HEADER_MAX = 64 * 1024


def _smtp_old(raw: bytes) -> bool:
    """The listener: is there a header end within its event-loop limit?"""
    return not (raw.find(b"\n\n", 0, LOOP_HEADER_MAX) < 0 and raw.find(b"\n\r\n", 0, LOOP_HEADER_MAX) < 0)


def _authn_old(raw: bytes) -> bytes:
    """The authentication checks: the header block they parsed."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    return raw if end < 0 else raw[: end + 2]


def _parsing_old(raw: bytes) -> int:
    """The parser: the header block's length, for its size limit."""
    end = re.compile(rb"\r?\n\r?\n").search(raw)
    return end.start() if end else len(raw)


def _stdlib_headers(raw: bytes) -> list[tuple[str, str]]:
    return list(email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw).items())


@pytest.mark.parametrize(
    ("raw", "end"),
    [
        (b"Subject: a\r\n\r\nbody\r\n\r\nmore", (10, 14)),
        (b"Subject: a\n\nbody", (10, 12)),
        (b"Subject: a\r\n\nbody", (10, 13)),
        (b"Subject: a\n\r\nbody", (10, 13)),
        (b"Subject: a\r\n", None),
        (b"\r\nbody: not a header\r\n\r\nrest", (0, 2)),
        (b"\nbody", (0, 1)),
    ],
)
def test_the_header_block_ends_at_the_first_empty_line(raw: bytes, end: tuple[int, int] | None) -> None:
    assert header_block_end(raw) == end


def test_a_limit_bounds_the_search() -> None:
    raw = b"X: " + b"a" * 100 + b"\r\n\r\nbody"
    assert header_block_end(raw, 50) is None
    assert header_block_end(raw, len(raw)) == (103, 107)


def test_the_checks_read_only_the_header_block_whatever_the_line_endings() -> None:
    # The old split looked for CRLF CRLF first, so it handed the body's first lines over with
    # the header block (the stdlib's header parser then stopped at the empty line itself).
    lf_fields = b"From: a@example.com\nSubject: hi\n\nFrom: ceo@example.com\r\n\r\nrest"
    lf_then_crlf = b"From: a@example.com\n\r\nFrom: b@example.com\n"
    assert _authn_old(lf_fields).endswith(b"ceo@example.com\r\n") and _authn_old(lf_then_crlf) == lf_then_crlf
    assert header_block(lf_fields).get_all("From") == ["a@example.com"]
    assert header_block(lf_then_crlf).get_all("From") == ["a@example.com"]


def test_a_mail_that_begins_with_an_empty_line_has_no_header_block_to_outgrow(settings: Any) -> None:
    # No header fields, then a long first paragraph: the parser measured that paragraph as
    # the header block and quarantined the mail as "header block larger than ...".
    raw = b"\r\n" + b"a line of the body, not a header field\r\n" * (settings.MAX_HEADER_BYTES // 40 + 10)
    parsed = parse_mail(raw)
    assert parsed.quarantine_reason == ""
    assert "a line of the body" in parsed.body_preview


def test_every_corpus_mail_splits_as_the_old_answers_did_or_as_the_stdlib_does() -> None:
    corpus_required()
    disagreements = []
    for path in [*CORPUS_FILES, *TESTDATA_FILES]:
        raw = Path(path).read_bytes()
        end = header_block_end(raw)
        assert _smtp_old(raw) == (header_block_end(raw, LOOP_HEADER_MAX) is not None), path
        new_len = end[0] if end else len(raw)
        new_head = raw if end is None else raw[: end[1]]
        if _parsing_old(raw) == new_len and _stdlib_headers(_authn_old(raw)) == _stdlib_headers(new_head):
            continue
        disagreements.append(path)
        # Where the old answers differ, the new one is the stdlib's: the same fields as the
        # whole mail parsed by BytesHeaderParser, which stops at the first empty line.
        assert _stdlib_headers(new_head) == _stdlib_headers(raw), path
    assert len(disagreements) < len(CORPUS_FILES) // 10

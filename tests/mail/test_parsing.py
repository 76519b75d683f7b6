"""The parser seam (mail.parsing.MailParser): settings.MAIL_PARSER picks what builds the
tree, and both parsers give indexing the same result for every mail the stdlib can parse."""

from __future__ import annotations

import email.parser
import hashlib
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from mail import authn, mimetree, parsing
from tests.mail.corpus import CORPUS, CORPUS_FILES, TESTDATA, TESTDATA_FILES, corpus_required
from tests.mime import build_mail

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _common import realistic_mail  # noqa: E402

MIME_FIXTURES = sorted(p for p in TESTDATA.rglob("*.eml"))
BUILT = [
    build_mail(to="a@x.test", headers={"Cc": "Bee <b@x.test>", "Reply-To": "r@x.test", "Auto-Submitted": "no"}),
    build_mail(to=["a@x.test", "c@x.test"], body="plain", html="<p>rich <b>text</b></p>"),
    build_mail(
        to="a@x.test",
        subject="=?utf-8?q?caf=C3=A9?= report",
        attachments=[("report.pdf", "application/pdf", b"%PDF-1.4 " * 300), ("a.txt", "text/plain", b"hello")],
    ),
]


def _result(raw: bytes, parser: str) -> tuple[parsing.ParsedMail, list[str]]:
    """What indexing gets from ``raw`` through the seam, and the sha256 of each attachment
    part as it would be stored (the parts themselves are not compared as objects)."""
    with override_settings(MAIL_PARSER=parser):
        parsed = parsing.parse_mail_stream(io.BytesIO(raw))
    digests = [parsing.part_decode_to(a.part, io.BytesIO())[0] for a in parsed.attachments if a.part is not None]
    return parsed, digests


def _assert_same(paths: list[Path]) -> int:
    compared = 0
    for path in paths:
        raw = path.read_bytes()
        stdlib = _result(raw, "stdlib")
        if stdlib[0].parse_status == "failed":
            continue  # the limits refused it: nothing parsed to compare
        assert _result(raw, "mimetree") == stdlib, path
        compared += 1
    return compared


def test_both_parsers_index_every_mime_fixture_alike() -> None:
    assert _assert_same(MIME_FIXTURES) >= len(TESTDATA_FILES) - 2


def test_both_parsers_index_every_corpus_mail_alike() -> None:
    corpus_required()
    assert _assert_same(CORPUS_FILES) > len(CORPUS_FILES) // 2


@pytest.mark.parametrize("raw", BUILT, ids=["headers", "alternative", "attachments"])
def test_both_parsers_index_built_mail_alike(raw: bytes) -> None:
    stdlib = _result(raw, "stdlib")
    assert stdlib[0].parse_status == "ok" and stdlib[0].to
    assert _result(raw, "mimetree") == stdlib


class _FeedParserRefused(email.parser.BytesFeedParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the feed parser ran")


def test_the_stdlib_parser_never_builds_a_tree_with_mimetree(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(raw: bytes) -> None:
        raise AssertionError("mimetree ran")

    monkeypatch.setattr(mimetree, "parse_tree", refused)
    raw = BUILT[2]
    with override_settings(MAIL_PARSER="stdlib"):
        parsed = parsing.parse_mail(raw)
        assert parsing.parse_bytes(raw).get_content_type() == "multipart/mixed"
    assert parsed.subject == "café report" and [a.filename for a in parsed.attachments] == ["report.pdf", "a.txt"]


def test_the_mimetree_parser_builds_the_usual_mail_without_the_feed_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing.email.parser, "BytesFeedParser", _FeedParserRefused)
    with override_settings(MAIL_PARSER="mimetree"):
        parsed = parsing.parse_mail(BUILT[1])
    assert parsed.body_preview == "plain"


def test_an_unknown_parser_name_is_a_configuration_error() -> None:
    with override_settings(MAIL_PARSER="fast"), pytest.raises(ImproperlyConfigured, match="MAIL_PARSER"):
        parsing.parse_mail(BUILT[0])


def test_the_result_is_what_the_index_reads() -> None:
    parsed = parsing.parse_mail(BUILT[2])
    (pdf, txt) = parsed.attachments
    assert (pdf.content_type, pdf.size, pdf.part_index) == ("application/pdf", len(b"%PDF-1.4 " * 300), 2)
    assert parsing.part_decode_to(txt.part, io.BytesIO()) == (hashlib.sha256(b"hello").hexdigest(), 5)  # type: ignore[arg-type]  # a parsed part is always kept


# --- The SMTP listener's header read (mail.authn.header_block) through the seam ------------

NAMED_CORPUS_MAILS = [
    "flanker/encoded-header.eml",
    "flanker/from-encoding.eml",
    "flanker/bounce/office365.eml",
    "flanker/false-multipart.eml",
]


def _header_read(raw: bytes, parser: str) -> tuple[Any, ...]:
    """What the listener reads of ``raw``'s headers under ``parser``: every field as the
    parse holds it, the payload and defects, and the From verdicts authn computes."""
    with override_settings(MAIL_PARSER=parser):
        headers = authn.header_block(raw)
    return (
        list(headers.raw_items()),
        headers.get_payload(),
        headers.get_unixfrom(),
        [type(d).__name__ for d in headers.defects],
        authn.header_from(headers),
    )


@contextmanager
def _mimetree_calls() -> Iterator[list[str]]:
    """The names of mail.mimetree's functions that run inside the block."""
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename == mimetree.__file__:
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def _header_mails() -> list[bytes]:
    return [*(p.read_bytes() for p in MIME_FIXTURES), *BUILT, realistic_mail(3, "agent@agents.test")]


def test_both_parsers_read_the_listeners_headers_alike() -> None:
    mails = _header_mails()
    for raw in mails:
        assert _header_read(raw, "mimetree") == _header_read(raw, "stdlib"), raw[:400]
    assert len(mails) > 10


def test_both_parsers_read_the_listeners_headers_of_every_corpus_mail_alike() -> None:
    corpus_required()
    paths = [CORPUS / name for name in NAMED_CORPUS_MAILS]
    paths += [p for p in CORPUS_FILES if p.stat().st_size < 2_000_000 and p not in paths]
    for path in paths:
        raw = path.read_bytes()
        assert _header_read(raw, "mimetree") == _header_read(raw, "stdlib"), path
    # An encoded word hiding a comma, and a raw 8-bit byte, in the display name.
    assert _header_read((CORPUS / "flanker/encoded-header.eml").read_bytes(), "mimetree")[4] == (
        "foo.bar@example.com",
        True,
    )
    assert _header_read((CORPUS / "flanker/from-encoding.eml").read_bytes(), "mimetree")[4] == (
        "ingo@blank.pages.de",
        True,
    )


def test_the_stdlib_parser_reads_the_listeners_headers_without_mimetree() -> None:
    raw = realistic_mail(4, "agent@agents.test")
    with override_settings(MAIL_PARSER="stdlib"), _mimetree_calls() as calls:
        headers = authn.header_block(raw)
    assert calls == []
    assert authn.header_from_address(headers) and headers["Subject"].endswith("#4")


def test_the_mimetree_parser_reads_the_listeners_headers_with_mimetree() -> None:
    with override_settings(MAIL_PARSER="mimetree"), _mimetree_calls() as calls:
        authn.header_block(realistic_mail(5, "agent@agents.test"))
    assert "parse_headers" in calls

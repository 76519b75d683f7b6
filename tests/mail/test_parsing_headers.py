"""The index reads its headers in one pass (mail.parsing._indexed_headers): the same values,
in the same order, as ``Message.get`` and ``get_all`` give, over every corpus mail."""

from __future__ import annotations

from email.header import Header
from typing import Any

import pytest

from mail import mimetree, parsing
from tests.mail.corpus import TESTDATA, corpus_required, real_mails
from tests.mime import build_mail


def test_indexed_headers_are_what_get_and_get_all_return() -> None:
    corpus_required()
    raws = real_mails(max_bytes=2_000_000)
    raws.append(
        build_mail(
            to="a@x.test", headers={"Cc": "b@x.test", "X-AgentMail-Idempotency-Key": "k1", "Reply-To": "r@x.test"}
        )
    )
    raws.append(b"TO: one@x.test\r\nSubject: first\r\nto: two@x.test\r\nsubject: second\r\n\r\nbody\r\n")
    seen = 0
    for raw in raws:
        msg = parsing.parse_bytes(raw)
        headers = parsing._indexed_headers(msg)
        for name in parsing._INDEXED_HEADERS:
            expected = msg.get_all(name) or []
            assert [str(v) for v in headers.get(name, [])] == [str(v) for v in expected], (name, raw[:200])
            if expected:  # a str, or a Header for undecodable 8-bit bytes, as get() returns
                assert type(headers[name][0]) is type(msg.get(name))
            else:
                assert name not in headers
            seen += len(expected)
    assert seen > len(raws)


def test_the_first_of_a_repeated_header_is_indexed_and_all_addresses_are() -> None:
    parsed = parsing.parse_mail(
        b"TO: one@x.test\r\nSubject: first\r\nto: Two <two@x.test>\r\nsubject: second\r\n\r\nbody\r\n"
    )
    assert parsed.subject == "first"
    assert parsed.to == ["one@x.test", "two@x.test"]


def test_the_filename_shortcut_is_get_filename() -> None:
    corpus_required()
    raws = real_mails(max_bytes=2_000_000)
    raws += [
        build_mail(to="a@x.test", attachments=[("report.pdf", "application/pdf", b"%PDF")]),
        b"Content-Type: text/plain; NAME*0*=utf-8''r%C3%A9; NAME*1=sum.txt\r\n\r\nbody\r\n",
        b'Content-Type: image/png\r\nContent-Disposition: inline; FileName="a.png"\r\n\r\nx\r\n',
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\r\nbody\r\n",
    ]
    named = 0
    for raw in raws:
        for part in parsing.parse_bytes(raw).walk():
            if any(isinstance(part.get(h), Header) for h in ("content-disposition", "content-type")):
                continue  # raw 8-bit parameters: read as UTF-8 (the tests below), not as U+FFFD
            try:
                expected = part.get_filename()
            except Exception as exc:  # the stdlib on hostile parameters: both must raise alike
                with pytest.raises(type(exc)):
                    parsing._filename(part)
                continue
            assert parsing._filename(part) == expected, raw[:200]
            named += expected is not None
    assert named > 20


def test_parts_without_a_name_never_parse_their_parameters_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from email.message import Message

    def refused(self: Message, failobj: object = None) -> None:
        raise AssertionError("get_filename ran")

    monkeypatch.setattr(Message, "get_filename", refused)
    parsed = parsing.parse_mail(build_mail(to="a@x.test", body="plain", html="<p>rich</p>"))

    assert not parsed.quarantine_reason and parsed.body_preview == "plain" and not parsed.attachments


@pytest.fixture(params=["mimetree", "stdlib"])
def parse_mail(request: pytest.FixtureRequest, settings: Any) -> Any:
    """parse_mail through each parser (settings.MAIL_PARSER): mail.mimetree's, and the stdlib's."""
    settings.MAIL_PARSER = request.param
    return parsing.parse_mail


def test_raw_utf8_headers_are_read_as_utf8(parse_mail: Any) -> None:
    raw = (TESTDATA / "raw-utf8-headers.eml").read_bytes()

    parsed = parse_mail(raw)

    assert parsed.subject == "Café José naïve reçu"
    assert (parsed.from_name, parsed.sender) == ("Jöhn Doe", "jdöe@mächine.example")
    assert parsed.from_header == "Jöhn Doe <jdöe@mächine.example>"
    assert parsed.to == ["märy@exämple.net", "owner@agents.localhost"]
    assert parsed.message_id == "<utf8-headers@mächine.example>"


def test_the_fast_tree_builds_raw_utf8_mail() -> None:
    for name in ("raw-utf8-headers.eml", "raw-utf8-attachment-filename.eml"):
        assert mimetree.parse_tree((TESTDATA / name).read_bytes()) is not None


def test_invalid_utf8_in_a_header_keeps_what_is_valid(parse_mail: Any) -> None:
    parsed = parse_mail("From: a@x.test\r\nSubject: café ".encode() + b"\xff\xfe end\r\n\r\nbody\r\n")

    assert parsed.subject == "café \ufffd\ufffd end"


def test_a_raw_utf8_attachment_filename_is_indexed_decoded(parse_mail: Any) -> None:
    parsed = parse_mail((TESTDATA / "raw-utf8-attachment-filename.eml").read_bytes())

    assert not parsed.quarantine_reason
    assert [(a.filename, a.disposition, a.content_type) for a in parsed.attachments] == [
        ("ФНС_РФ558.zip", "attachment", "application/octet-stream")
    ]


def test_an_encoded_word_in_a_display_name_is_never_read_as_an_address(parse_mail: Any) -> None:
    parsed = parse_mail((TESTDATA / "encoded-word-address-in-display-name.eml").read_bytes())

    assert (parsed.sender, parsed.from_name) == ("eve@blocked.test", "ok@fine.test")
    # An encoded comma does not split a mailbox; an encoded address is not one more recipient.
    assert parsed.to == ["john@trusted.test", "owner@agents.localhost"]


def test_a_display_name_mixing_raw_utf8_and_encoded_words_keeps_both(parse_mail: Any) -> None:
    parsed = parse_mail("From: Zoë =?utf-8?q?M=C3=BCller?= <zoe@x.test>\r\n\r\nbody\r\n".encode())

    assert (parsed.from_name, parsed.sender) == ("Zoë Müller", "zoe@x.test")

"""The index reads its headers in one pass (mail.parsing._indexed_headers): the same values,
in the same order, as ``Message.get`` and ``get_all`` give, over every corpus mail."""

from __future__ import annotations

import pytest

from mail import parsing
from tests.mail.test_corpus import CORPUS_FILES, TESTDATA_FILES
from tests.mime import build_mail


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus is not beside this checkout")
def test_indexed_headers_are_what_get_and_get_all_return() -> None:
    raws = [p.read_bytes() for p in [*CORPUS_FILES, *TESTDATA_FILES] if p.stat().st_size < 2_000_000]
    raws.append(
        build_mail(to="a@x.test", headers={"Cc": "b@x.test", "X-AgentMail-Idempotency-Key": "k1", "Reply-To": "r@x.test"})
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


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus is not beside this checkout")
def test_the_filename_shortcut_is_get_filename() -> None:
    raws = [p.read_bytes() for p in [*CORPUS_FILES, *TESTDATA_FILES] if p.stat().st_size < 2_000_000]
    raws += [
        build_mail(to="a@x.test", attachments=[("report.pdf", "application/pdf", b"%PDF")]),
        b"Content-Type: text/plain; NAME*0*=utf-8''r%C3%A9; NAME*1=sum.txt\r\n\r\nbody\r\n",
        b"Content-Type: image/png\r\nContent-Disposition: inline; FileName=\"a.png\"\r\n\r\nx\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\r\nbody\r\n",
    ]
    named = 0
    for raw in raws:
        for part in parsing.parse_bytes(raw).walk():
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

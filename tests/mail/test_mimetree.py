"""mail.mimetree builds the feed parser's own tree, or declines: compared object by object
with ``BytesFeedParser(policy=compat32)`` over the broken-mail corpus, our regression
mail and generated MIME full of near-misses (false boundaries, mixed line endings,
missing blank lines, double and unclosed boundaries)."""

from __future__ import annotations

import email.parser
import email.policy
import sys
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mail import mimetree, parsing
from tests.mail.corpus import corpus_required, real_mails
from tests.mime import build_mail

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _common import realistic_mail  # noqa: E402


def _stdlib(raw: bytes, chunk: int = 0) -> EmailMessage:
    parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
    for start in range(0, len(raw), chunk or len(raw) or 1):
        parser.feed(raw[start : start + (chunk or len(raw))])
    return parser.close()


def _state(msg: Any) -> Any:
    """Everything a Message holds, its parts' included (defects by type and text)."""
    if not isinstance(msg, EmailMessage):
        return msg
    state = dict(vars(msg))
    state["defects"] = [(type(d).__name__, str(d)) for d in msg.defects]
    payload = state.get("_payload")
    if isinstance(payload, list):
        state["_payload"] = [_state(part) for part in payload]
    state["class"] = type(msg)
    return state


def _check(raw: bytes) -> bool:
    """True when mimetree built the tree (and it is the stdlib's), False when it declined."""
    tree = mimetree.parse_tree(raw)
    if tree is None:
        return False
    assert _state(tree) == _state(_stdlib(raw)), raw[:400]
    # The stdlib fed in pieces (as parse_bytes and parse_mail_stream feed it) builds the
    # same tree, so mail parsed one way at ingest and the other at download agrees.
    assert _state(tree) == _state(_stdlib(raw, chunk=997)), raw[:400]
    return True


def test_the_usual_shapes_are_built_as_the_stdlib_builds_them() -> None:
    shapes = [
        realistic_mail(7, "agent@agents.test"),
        build_mail(to="a@x.test", body="plain only"),
        build_mail(to="a@x.test", html="<p>hi</p>", attachments=[("a.pdf", "application/pdf", b"%PDF" * 300)]),
        b"Subject: bare\n\nno multipart, LF only\n",
        b"Subject: empty body\r\n\r\n",
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\npreamble\r\n--x\r\n\r\nno headers\r\n--x--',
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: multipart/alternative; '
        b'boundary="i"\r\n\r\n--i\r\n\r\nt\r\n--i--\r\n\r\n\r\n--o\r\n\r\nsecond\r\n--o--\r\nepilogue',
        b"Subject: 8-bit \xc3\xa9\r\nTo: a@x.test\r\n\r\nbody \xff\r\n",
        # Separators that are not boundary lines: mid-line, longer, followed by text.
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nline x--b\r\n\r\nmore\r\n'
        b"--bb\r\n\r\n--b x\r\n\r\n--b--\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b \t\r\rlone CR\r--b--',
        # Forwards and bounces: a message inside a part, or as the whole body.
        b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
        b'Content-Type: multipart/mixed; boundary="f"\r\n\r\n--f\r\n\r\nSee below.\r\n--f\r\n'
        b"Content-Type: message/rfc822\r\n\r\nSubject: forwarded\r\nFrom: a@x.test\r\n\r\noriginal\r\n\r\n--f--\r\n",
        b'Content-Type: multipart/report; boundary="r"\r\n\r\n--r\r\n\r\nbounced\r\n--r\r\n'
        b"Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nt\r\n"
        b"--i--\r\ninner epilogue\r\n\r\n--r\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: deep\r\n\r\nbody\r\n--r--\r\n",
    ]
    for raw in shapes:
        assert _check(raw), raw[:200]


def test_mail_the_stdlib_marks_or_treats_specially_is_declined() -> None:
    declined = [
        b"From sender@example.com Tue Nov 24 12:00:00 2026\r\nSubject: mbox\r\n\r\nbody\r\n",
        b" continued first\r\nSubject: x\r\n\r\nbody\r\n",
        b"Subject: no separator\r\nthis is body\r\n",
        b"Subject: headers only\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nunclosed\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\nno boundary line at all\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n\r\ntwice\r\n--b--\r\n',
        b'Content-Type: multipart/digest; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        # A folded boundary parameter: no single line can match it.
        b'Content-Type: multipart/mixed; boundary="a\r\n b"\r\n\r\n--a\r\n b\r\n\r\nx\r\n--a\r\n b--\r\n',
        b"Subject: form\x0cfeed\r\n\r\nbody\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: base64\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
    ]
    for raw in declined:
        assert not _check(raw), raw


def test_every_corpus_mail_it_builds_is_the_stdlib_tree() -> None:
    corpus_required()
    raws = real_mails(max_bytes=2_000_000)
    built = sum(_check(raw) for raw in raws)
    # Real mail is mostly well formed: the fast path must take a good share of it.
    assert built >= len(raws) // 3, (built, len(raws))


_EOL = st.sampled_from(["\r\n", "\n", "\r"])
_NOISE = st.sampled_from(["word", " ", "\t", "-", "--", "=", ":", "é", "\udcff", "\x0c", "From ", "\r", "\n"])


@st.composite
def _header_block(draw: Any, content_type: str) -> str:
    eol = draw(_EOL)
    lines = []
    if draw(st.booleans()):
        lines.append("Subject: " + "".join(draw(st.lists(_NOISE, max_size=4))) + eol)
    if content_type:
        lines.append("Content-Type: " + content_type + eol)
    if draw(st.integers(0, 5)) == 0:
        lines.append(draw(st.sampled_from([" folded", "\tfolded", "no colon", ":empty name", "X-Ok: fine"])) + eol)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "X-Folded: a" + eol + " b" + eol)
    separator = draw(st.sampled_from([eol] * 6 + ["", "not blank" + eol]))
    return "".join(lines) + separator


def _near_misses(boundaries: tuple[str, ...]) -> Any:
    """Lines that are, or almost are, an enclosing part's boundary line."""
    if not boundaries:
        return st.just("")
    return st.sampled_from(boundaries).flatmap(
        lambda b: st.sampled_from(["x--" + b, "--" + b + "x", " --" + b, "--" + b + "-", "--" + b, "--" + b + "--"])
    )


@st.composite
def _entity(draw: Any, depth: int = 0, boundaries: tuple[str, ...] = ()) -> str:
    if depth < 3 and draw(st.integers(0, 2)) == 0:
        boundary = draw(st.text(st.sampled_from("ab-=_.() '"), min_size=1, max_size=6))
        kind = draw(st.sampled_from(["mixed", "mixed", "alternative", "digest"]))
        quoted = draw(st.booleans())
        content_type = f"multipart/{kind}; boundary={chr(34) if quoted else ''}{boundary}{chr(34) if quoted else ''}"
        head = draw(_header_block(content_type))
        eol = draw(_EOL)
        body = "".join(draw(st.lists(_NOISE, max_size=3)))  # preamble
        for _ in range(draw(st.integers(0, 3))):
            tail = draw(st.sampled_from(["", " ", "\t ", "x", "--"]))
            body += ("" if not body or body.endswith(("\r", "\n")) else eol) + "--" + boundary + tail + draw(_EOL)
            body += draw(_entity(depth + 1, (*boundaries, boundary)))
        if draw(st.integers(0, 4)):
            body += ("" if not body or body.endswith(("\r", "\n")) else eol) + "--" + boundary + "--"
            body += draw(st.sampled_from(["", " ", "\t"])) + draw(st.sampled_from(["", "\r\n", "\n", "\r"]))
            body += "".join(draw(st.lists(_NOISE, max_size=3)))  # epilogue
        return head + body
    if depth < 3 and draw(st.integers(0, 4)) == 0:
        return draw(_header_block("message/rfc822")) + draw(_entity(depth + 1, boundaries))
    content_type = draw(st.sampled_from(["", "text/plain", "text/html; charset=utf-8", "message/rfc822", "image/png"]))
    lines = draw(st.lists(_near_misses(boundaries) | st.lists(_NOISE, max_size=4).map("".join), max_size=4))
    eol = draw(_EOL)
    return draw(_header_block(content_type)) + "".join(line + eol for line in lines)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(_entity())
def test_generated_mail_it_builds_is_the_stdlib_tree(mail: str) -> None:
    _check(mail.encode("utf-8", "surrogateescape"))


def _parsed(raw: bytes) -> parsing.ParsedMail:
    parsed = parsing.parse_mail(raw)
    for attachment in parsed.attachments:
        attachment.part = None
    return parsed


def test_parse_mail_indexes_every_corpus_mail_as_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus_required()
    raws = real_mails(max_bytes=2_000_000)
    raws.append(realistic_mail(3, "agent@agents.test"))
    fast = [_parsed(raw) for raw in raws]
    monkeypatch.setattr(mimetree, "parse_tree", lambda raw: None)
    assert fast == [_parsed(raw) for raw in raws]


def test_mail_in_the_usual_shape_never_reaches_the_feed_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = realistic_mail(5, "agent@agents.test")

    class Refused(email.parser.BytesFeedParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("the feed parser ran")

    monkeypatch.setattr(parsing.email.parser, "BytesFeedParser", Refused)

    parsed = parsing.parse_mail(raw)
    assert not parsed.quarantine_reason and parsed.subject.endswith("#5") and parsed.body_preview
    assert parsing.parse_bytes(raw).get_content_type() == "multipart/alternative"


def _heads(raw: bytes) -> list[bytes]:
    """Header blocks as ``mail.authn.header_block`` cuts them, and some that it does not."""
    heads = [raw]
    for blank in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        if (end := raw.find(blank)) >= 0:
            heads += [raw[: end + len(blank) // 2], raw[: end + len(blank)]]
    return heads


def _check_headers(head: bytes) -> bool:
    """True when parse_headers built the header parser's message, False when it declined."""
    msg = mimetree.parse_headers(head)
    if msg is None:
        return False
    assert _state(msg) == _state(email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)), head
    return True


def test_every_corpus_header_block_it_builds_is_the_header_parsers() -> None:
    heads = [head for raw in real_mails(max_bytes=2_000_000) for head in _heads(raw)]
    built = sum(_check_headers(head) for head in heads)
    assert built >= len(heads) // 4, (built, len(heads))


@settings(max_examples=2000, deadline=None)
@given(_header_block(""), st.sampled_from(["", "\r\n", "\n", "\r", "body\r\n", " \r\n"]))
def test_generated_header_blocks_it_builds_are_the_header_parsers(block: str, tail: str) -> None:
    _check_headers((block + tail).encode("utf-8", "surrogateescape"))


def test_the_listeners_header_block_skips_the_header_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    from mail import authn

    raw = realistic_mail(6, "agent@agents.test")
    monkeypatch.setattr(authn.email.parser, "BytesHeaderParser", None)  # any use fails
    headers = authn.header_block(raw)
    assert authn.header_from_address(headers) and headers["Subject"].endswith("#6")
    assert headers.get_payload() == ""

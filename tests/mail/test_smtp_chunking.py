"""CHUNKING (RFC 3030) on the listener, over real SMTP conversations: BDAT chunks, pipelined
with their octets, make one message stored byte for byte (no dot-stuffing); a chunk is read
whatever its answer, so a refused one never turns into commands; the size and line limits
of DATA hold."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mail.models import InboundDelivery, Message
from mail.smtp_tls import ServerTls, self_signed_ensure
from mail.storage import raw_read
from tests.mail.test_smtp_replies import Session
from tests.mail.test_smtp_submission import _listener, mail, outbound_count
from tests.mail.test_smtp_submission import session as submission_session
from tests.mime import build_mail


@pytest.fixture
def session(smtp_listener: tuple[str, int]) -> Any:
    opened = Session(smtp_listener)
    opened.reply()
    yield opened
    opened.close()


def _stored(count: int) -> list[bytes]:
    deadline = time.monotonic() + 5
    while InboundDelivery.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [raw_read(delivery.storage_key) for delivery in InboundDelivery.objects.order_by("received_at")]


def _transaction(session: Session, recipient: str) -> None:
    assert session.command(b"MAIL FROM:<alice@example.com>")[0].startswith(b"250 2.")
    assert session.command(f"RCPT TO:<{recipient}>".encode())[0].startswith(b"250 2.")


def _bdat(session: Session, chunk: bytes, last: str = "") -> list[bytes]:
    session.send(b"BDAT %d%s\r\n%s" % (len(chunk), last.encode(), chunk))
    return session.reply()


def test_ehlo_offers_chunking(session: Session, owner: Any) -> None:
    keywords = [line[4:].strip() for line in session.command(b"EHLO client.example")]
    assert b"CHUNKING" in keywords


def test_a_message_sent_in_bdat_chunks_is_stored_byte_exact(session: Session, owner: Any) -> None:
    raw = build_mail(to=owner.address, subject="chunked", body="a\r\n.\r\n.leading dot\r\n" + "x" * 3000)
    assert b"\r\n.\r\n" in raw  # a DATA terminator inside: BDAT carries it as content
    session.command(b"EHLO client.example")
    _transaction(session, owner.address)
    first, second = raw[:700], raw[700:]
    # Pipelined (RFC 2920): both chunks with their octets in one write, answered in order.
    session.send(b"BDAT %d\r\n%sBDAT %d LAST\r\n%s" % (len(first), first, len(second), second))
    assert session.reply() == [b"250 2.0.0 OK: %d octets received\r\n" % len(first)]
    assert session.reply()[0].startswith(b"250 2.0.0 OK: queued")
    assert _stored(1) == [raw]
    assert session.command(b"NOOP")[0].startswith(b"250 ")  # in step with the client


def test_a_refused_chunk_is_read_and_not_taken_for_commands(session: Session, owner: Any) -> None:
    session.command(b"EHLO client.example")
    hostile = b"RSET\r\nMAIL FROM:<evil@example.com>\r\n"
    # No transaction yet: refused, and its octets skipped.
    assert _bdat(session, hostile, " LAST")[0].startswith(b"503 5.5.1")
    assert session.command(b"NOOP")[0].startswith(b"250 ")
    assert session.command(b"BDAT twelve")[0].startswith(b"501 5.5.4")  # then closed: its end is unknown
    assert session.lines.readline() == b""
    assert _stored(0) == []


def test_data_after_bdat_and_rset_between_chunks(session: Session, owner: Any) -> None:
    session.command(b"EHLO client.example")
    _transaction(session, owner.address)
    assert _bdat(session, b"Hello")[0].startswith(b"250 ")
    assert session.command(b"DATA")[0].startswith(b"503 5.5.1")
    assert session.command(b"RSET")[0].startswith(b"250 ")  # drops the chunk
    raw = build_mail(to=owner.address, subject="after rset")
    _transaction(session, owner.address)
    assert _bdat(session, raw, " LAST")[0].startswith(b"250 2.0.0 OK: queued")
    assert _stored(1) == [raw]


def test_bdat_keeps_the_size_and_line_limits_of_data(session: Session, owner: Any, settings: Any) -> None:
    settings.MAX_MESSAGE_BYTES = 4000  # read by new sessions
    small = Session(session.sock.getpeername())
    small.reply()
    try:
        small.command(b"EHLO client.example")
        _transaction(small, owner.address)
        chunk = b"y" * 3000 + b"\r\n"
        assert _bdat(small, chunk)[0].startswith(b"250 ")
        assert _bdat(small, chunk) == [b"552 5.3.4 Error: Too much mail data\r\n"]
        assert _bdat(small, b"\r\n", " LAST")[0].startswith(b"552 5.3.4")
        assert small.command(b"NOOP")[0].startswith(b"250 ")
    finally:
        small.close()
    session.command(b"EHLO client.example")  # opened before the limit changed
    _transaction(session, owner.address)
    long_line = b"Subject: long\r\n\r\n" + b"z" * 70_000 + b"\r\n"
    assert _bdat(session, long_line, " LAST") == [b"552 5.3.4 Line too long\r\n"]
    assert _stored(0) == []


@pytest.fixture
def submission(transactional_db: Any, tmp_path: Path) -> Iterator[tuple[str, int]]:
    cert, key = self_signed_ensure(tmp_path / "tls", "agents.localhost")
    yield from _listener(ServerTls(str(cert), str(key)))


def test_an_agent_sends_in_bdat_chunks_through_the_submission_port_only_after_auth(submission: Any, owner: Any) -> None:
    raw = mail(owner.address, subject="chunked submission").as_bytes().replace(b"\n", b"\r\n")
    with submission_session(submission) as client:
        client.ehlo()
        assert client.has_extn("chunking")
        client.send(b"BDAT %d LAST\r\n%s" % (len(raw), raw))  # before AUTH: refused, its octets read
        assert client.getreply()[0] == 530
        client.login(owner.address, owner.token)
        assert client.docmd("MAIL", f"FROM:<{owner.address}>")[0] == 250
        assert client.docmd("RCPT", "TO:<bob@example.com>")[0] == 250
        half = len(raw) // 2
        client.send(b"BDAT %d\r\n%s" % (half, raw[:half]))
        assert client.getreply()[0] == 250
        client.send(b"BDAT %d LAST\r\n%s" % (len(raw) - half, raw[half:]))
        code, reply = client.getreply()
        assert (code, reply[:22]) == (250, b"2.0.0 OK: queued as ms")
    assert outbound_count() == 1
    assert Message.objects.get(direction=Message.Direction.OUTBOUND).subject == "chunked submission"

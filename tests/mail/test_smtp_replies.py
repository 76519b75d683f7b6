"""ENHANCEDSTATUSCODES and PIPELINING on the listener, over real SMTP conversations: every
2xx/4xx/5xx reply of a whole session carries an enhanced status code (RFC 2034: not the
greeting nor the replies to HELO/EHLO), and a group of commands sent at once is answered
in order."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest

from mail.models import InboundDelivery
from mail.smtp_replies import reply_enhanced
from tests.mime import build_mail

ENHANCED = re.compile(rb"[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( |\r\n)")


class Session:
    """One SMTP session over a plain socket; ``reply`` returns a whole reply, its lines."""

    def __init__(self, listener: tuple[str, int]) -> None:
        self.sock = socket.create_connection(listener, timeout=10)
        self.lines = self.sock.makefile("rb")

    def reply(self) -> list[bytes]:
        lines = [self.lines.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.lines.readline())
        return lines

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: bytes) -> list[bytes]:
        self.send(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


@pytest.fixture
def session(smtp_listener: tuple[str, int]) -> Any:
    opened = Session(smtp_listener)
    yield opened
    opened.close()


def test_ehlo_offers_pipelining_and_enhanced_status_codes(session: Session, owner: Any) -> None:
    session.reply()
    keywords = [line[4:].strip() for line in session.command(b"EHLO client.example")]
    assert b"PIPELINING" in keywords
    assert b"ENHANCEDSTATUSCODES" in keywords
    assert {b"8BITMIME", b"SMTPUTF8"} <= set(keywords)


def test_every_reply_of_a_whole_session_has_an_enhanced_status_code(session: Session, owner: Any) -> None:
    greeting = session.reply()
    assert greeting[0].startswith(b"220 ")
    assert session.command(b"EHLO client.example")[-1].startswith(b"250 ")
    commands = [
        b"NOOP",
        b"HELP",
        b"VRFY owner@agents.localhost",
        b"EXPN staff",
        b"FROBNICATE",
        b"RCPT TO:<owner@agents.localhost>",  # before MAIL
        b"DATA",  # before RCPT
        b"STARTTLS",  # no certificate configured in this test
        b"AUTH PLAIN AGFiYwBkZWY=",  # not offered on this port
        b"MAIL FROM:<sender@example.com> SIZE=999999999999",
        b"MAIL FROM:<sender@exa mple.com",
        b"MAIL FROM:<sender@example.com> FROB=1",
        b"MAIL FROM:<sender@example.com>",
        b"MAIL FROM:<sender@example.com>",  # nested
        b"RCPT TO:<nobody@agents.localhost>",
        b"RCPT TO:<owner@agents.localhost> NOTIFY=NEVER",
        b"RCPT TO:<owner@agents.localhost>",
        b"DATA extra",
        b"RSET",
        b"MAIL FROM:<sender@example.com>",
        b"RCPT TO:<owner@agents.localhost>",
    ]
    replies = {command: session.command(command) for command in commands}
    assert session.command(b"DATA")[0].startswith(b"354 ")
    session.send(build_mail(to="owner@agents.localhost", subject="codes") + b"\r\n.\r\n")
    replies[b"(end of data)"] = session.reply()
    replies[b"QUIT"] = session.command(b"QUIT")

    for command, reply in replies.items():
        for line in reply:
            assert ENHANCED.match(line), (command, line)
    assert replies[b"(end of data)"][0].startswith(b"250 2.0.0")
    assert replies[b"QUIT"][0].startswith(b"221 2.0.0")
    assert replies[b"RCPT TO:<nobody@agents.localhost>"][0].startswith(b"550 5.1.1")
    assert replies[b"FROBNICATE"][0].startswith(b"500 5.5.2")
    assert InboundDelivery.objects.count() == 1


def test_pipelined_commands_are_answered_in_order(session: Session, owner: Any, teammate: Any) -> None:
    session.reply()
    session.command(b"EHLO client.example")
    session.send(
        b"MAIL FROM:<sender@example.com>\r\n"
        b"RCPT TO:<owner@agents.localhost>\r\n"
        b"RCPT TO:<nobody@agents.localhost>\r\n"
        b"RCPT TO:<teammate@agents.localhost>\r\n"
        b"DATA\r\n"
    )
    codes = [session.reply()[0][:9] for _ in range(5)]
    assert codes == [b"250 2.1.0", b"250 2.1.5", b"550 5.1.1", b"250 2.1.5", b"354 End d"]
    # The message and the next transaction in one send, too.
    session.send(
        build_mail(to="owner@agents.localhost", subject="one") + b"\r\n.\r\n"
        b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<owner@agents.localhost>\r\nDATA\r\n"
    )
    assert [session.reply()[0][:9] for _ in range(4)] == [b"250 2.0.0", b"250 2.1.0", b"250 2.1.5", b"354 End d"]
    session.send(build_mail(to="owner@agents.localhost", subject="two") + b"\r\n.\r\nQUIT\r\n")
    assert [session.reply()[0][:9] for _ in range(2)] == [b"250 2.0.0", b"221 2.0.0"]
    deliveries = InboundDelivery.objects.order_by("received_at")
    assert [sorted(d.envelope_recipients) for d in deliveries] == [
        ["owner@agents.localhost", "teammate@agents.localhost"],
        ["owner@agents.localhost"],
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("503 Error: need RCPT command", "503 5.5.1 Error: need RCPT command"),
        ("250 2.1.5 OK", "250 2.1.5 OK"),
        ("550-5.1.1 first line", "550-5.1.1 first line"),
        ("551 User not local", "551 5.0.0 User not local"),
        ("221", "221 2.0.0"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
    ],
)
def test_reply_enhanced_adds_the_code_that_fits_the_reply_code(reply: str, expected: str) -> None:
    assert reply_enhanced(reply) == expected

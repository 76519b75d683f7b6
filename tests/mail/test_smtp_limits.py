"""The listener's bounds on a client, through real SMTP conversations with the real listener
on 127.0.0.1: recipients per transaction, open sessions per address, and the longest a
session may last."""

from __future__ import annotations

import smtplib
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mail.models import InboundDelivery, Message
from tests.mime import build_mail


class Conversation:
    """One SMTP session over a plain socket, reading each reply whole."""

    def __init__(self, listener: tuple[str, int]) -> None:
        self.sock = socket.create_connection(listener, timeout=10)
        self.replies = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> bytes:
        """The last line of the next reply (b"" when the server closed the connection)."""
        while (line := self.replies.readline())[3:4] == b"-":
            pass
        return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def closed_by_server(self) -> bool:
        return self.replies.readline() == b""

    def close(self, *, abruptly: bool = False) -> None:
        if abruptly:
            # SO_LINGER 0: close sends a RST, as a client that crashed or lost its network.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.replies.close()
        self.sock.close()


@pytest.fixture
def conversations(smtp_listener: tuple[str, int]) -> Iterator[list[Conversation]]:
    opened: list[Conversation] = []
    yield opened
    for conversation in opened:
        conversation.close()


def _open(listener: tuple[str, int], opened: list[Conversation]) -> Conversation:
    conversation = Conversation(listener)
    opened.append(conversation)
    return conversation


def _greeting_once_released(listener: tuple[str, int], opened: list[Conversation]) -> bytes:
    """The greeting of a new session, retried while the listener has not yet seen an
    earlier session end (it learns of a close asynchronously)."""
    deadline = time.monotonic() + 5
    while True:
        conversation = _open(listener, opened)
        if conversation.greeting.startswith(b"220") or time.monotonic() > deadline:
            return conversation.greeting
        conversation.close()
        time.sleep(0.05)


# --- recipients per transaction ---------------------------------------------------------


def test_it_accepts_100_recipients_in_one_transaction_and_452s_the_next(smtp_listener: Any, owner: Any) -> None:
    recipients = [f"owner+{i}@agents.localhost" for i in range(101)]
    with smtplib.SMTP(*smtp_listener, timeout=30) as client:
        client.ehlo("mx.example.com")
        assert client.mail("alice@example.com")[0] == 250
        answers = [client.rcpt(rcpt) for rcpt in recipients]
        code, reply = client.data(build_mail(to=owner.address, subject="To a hundred"))

    assert [c for c, _ in answers[:100]] == [250] * 100
    assert answers[100] == (452, b"4.5.3 Too many recipients")
    assert code == 250, reply
    assert InboundDelivery.objects.get().envelope_recipients == recipients[:100]


def test_the_recipient_limit_is_a_setting(smtp_listener: Any, owner: Any, settings: Any) -> None:
    settings.SMTP_MAX_RECIPIENTS = 150
    with smtplib.SMTP(*smtp_listener, timeout=30) as client:
        client.ehlo("mx.example.com")
        client.mail("alice@example.com")
        codes = [client.rcpt(f"owner+{i}@agents.localhost")[0] for i in range(151)]
    assert codes == [250] * 150 + [452]


# --- sessions per client address --------------------------------------------------------


def test_it_refuses_one_session_too_many_from_an_address_with_421(
    smtp_listener: Any, conversations: list[Conversation], settings: Any
) -> None:
    settings.SMTP_MAX_SESSIONS_PER_IP = 3
    held = [_open(smtp_listener, conversations) for _ in range(3)]
    assert all(c.greeting.startswith(b"220") for c in held)

    refused = _open(smtp_listener, conversations)

    assert refused.greeting == b"421 4.7.0 Too many connections from your address\r\n"
    assert refused.closed_by_server()
    # The sessions already open are served as before.
    assert held[0].command(b"NOOP").startswith(b"250")


def test_a_session_that_ends_frees_its_place_even_when_the_client_vanishes(
    smtp_listener: Any, conversations: list[Conversation], settings: Any
) -> None:
    settings.SMTP_MAX_SESSIONS_PER_IP = 2
    polite, crashed = _open(smtp_listener, conversations), _open(smtp_listener, conversations)
    for _ in range(5):  # refusals take no place of their own
        assert _open(smtp_listener, conversations).greeting.startswith(b"421")

    assert polite.command(b"QUIT").startswith(b"221")
    polite.close()
    assert _greeting_once_released(smtp_listener, conversations).startswith(b"220")

    crashed.command(b"EHLO mx.example.com")
    crashed.sock.sendall(b"MAIL FROM:<alice@example.com>\r\n")
    crashed.close(abruptly=True)
    assert _greeting_once_released(smtp_listener, conversations).startswith(b"220")
    assert _open(smtp_listener, conversations).greeting.startswith(b"421")


def test_a_trusted_relay_is_not_capped(smtp_listener: Any, conversations: list[Conversation], settings: Any) -> None:
    settings.SMTP_MAX_SESSIONS_PER_IP = 2
    settings.AUTHSERV_TRUSTED_RELAYS = ["127.0.0.0/8"]
    greetings = [_open(smtp_listener, conversations).greeting for _ in range(4)]
    assert all(g.startswith(b"220") for g in greetings)


# --- the session deadline ---------------------------------------------------------------


def test_a_session_that_keeps_busy_past_the_deadline_gets_421_and_is_closed(
    smtp_listener: Any, conversations: list[Conversation], settings: Any
) -> None:
    settings.SMTP_SESSION_DEADLINE = 1
    started = time.monotonic()
    conversation = _open(smtp_listener, conversations)
    replies = []
    while time.monotonic() - started < 4:
        replies.append(conversation.command(b"NOOP"))
        if not replies[-1].startswith(b"250"):
            break
        time.sleep(0.2)  # slowly, but never idle for aiosmtpd's timeout

    assert replies[-1] == b"421 4.4.2 Session time limit exceeded; closing\r\n"
    assert 1 <= time.monotonic() - started < 3
    assert conversation.closed_by_server()


def test_a_message_still_being_sent_at_the_deadline_is_cut_and_nothing_is_stored(
    smtp_listener: Any, owner: Any, conversations: list[Conversation], settings: Any
) -> None:
    settings.SMTP_SESSION_DEADLINE = 1
    conversation = _open(smtp_listener, conversations)
    conversation.command(b"EHLO mx.example.com")
    conversation.command(b"MAIL FROM:<alice@example.com>")
    assert conversation.command(f"RCPT TO:<{owner.address}>".encode()).startswith(b"250")
    assert conversation.command(b"DATA").startswith(b"354")
    conversation.sock.sendall(build_mail(to=owner.address)[:200])

    assert conversation.reply() == b"421 4.4.2 Session time limit exceeded; closing\r\n"
    assert conversation.closed_by_server()
    time.sleep(0.2)
    assert InboundDelivery.objects.count() == 0


def test_a_message_being_committed_at_the_deadline_gets_its_250_before_the_421(
    smtp_listener: Any, owner: Any, conversations: list[Conversation], settings: Any
) -> None:
    settings.SMTP_SESSION_DEADLINE = 1
    # The group commit lingers for company, so the deadline passes while the mail is stored.
    settings.SMTP_GROUP_COMMIT_WAIT_MS = 1500
    conversation = _open(smtp_listener, conversations)
    conversation.command(b"EHLO mx.example.com")
    conversation.command(b"MAIL FROM:<alice@example.com>")
    conversation.command(f"RCPT TO:<{owner.address}>".encode())
    conversation.command(b"DATA")
    started = time.monotonic()

    answer = conversation.command(build_mail(to=owner.address, subject="Just in time") + b".")

    assert answer == b"250 2.0.0 OK: queued\r\n"
    assert time.monotonic() - started > 1.2  # answered after the commit, past the deadline
    assert InboundDelivery.objects.count() == 1
    assert conversation.reply() == b"421 4.4.2 Session time limit exceeded; closing\r\n"
    assert conversation.closed_by_server()
    deadline = time.monotonic() + 5
    while not Message.objects.filter(subject="Just in time").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Message.objects.filter(subject="Just in time").exists()

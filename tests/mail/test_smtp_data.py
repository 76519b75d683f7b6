"""The listener's DATA reader (mail.smtp_data) answers as aiosmtpd's line-at-a-time loop
does: the same byte streams, sent over real sockets to a stock aiosmtpd session and to the
listener's (held to aiosmtpd's line limit), get the same replies and hand the same content
to the handler. Replies are compared without the listener's enhanced status codes, and
its ``552 5.3.4`` for a line too long stands for aiosmtpd's ``500`` (mail.smtp_data says why)."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mail.smtp import IngestSMTP
from mail.smtp_data import READ_LIMIT, REPLY_TOO_LONG, REPLY_TOO_MUCH, TEXT_LINE_LIMIT, _longest_line, data_read
from tests.conftest import free_port

SIZE_LIMIT = 6000


class Recorder:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 OK"


class LimitedIngestSMTP(IngestSMTP):
    """The listener's session with aiosmtpd's limit on a line (the listener's is longer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_line_bytes = TEXT_LINE_LIMIT - 2


STOCK_TOO_LONG = b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
_ENHANCED = re.compile(rb"^(\d{3}[ -])[245]\.\d{1,3}\.\d{1,3} ")


def stock_form(reply: bytes) -> bytes:
    """A reply of the listener as aiosmtpd would word it."""
    if reply == REPLY_TOO_LONG.encode() + b"\r\n":
        return STOCK_TOO_LONG
    return _ENHANCED.sub(rb"\1", reply)


class Server(Controller):
    def __init__(self, session_class: type[SMTP]) -> None:
        super().__init__(Recorder(), hostname="127.0.0.1", port=free_port())
        self.session_class = session_class

    def factory(self) -> SMTP:
        return self.session_class(self.handler, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    pair = Server(LimitedIngestSMTP), Server(SMTP)
    for server in pair:
        server.start()
    yield pair
    for server in pair:
        server.stop()


def converse(server: Server, section: bytes, cuts: list[int], pipelined: bool) -> tuple[Any, ...]:
    """EHLO, MAIL, RCPT, DATA, then ``section`` (the message and its end line) sent in the
    pieces ``cuts`` makes, then NOOP (in the same send when ``pipelined``): the replies and
    what the handler got."""
    before = len(server.handler.contents)
    with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
        # Each piece goes out at once (no Nagle wait for the ACK of the one before).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = sock.makefile("rb")
        replies.readline()

        def command(line: bytes) -> bytes:
            sock.sendall(line)
            while (reply := replies.readline())[3:4] == b"-":
                pass
            return reply

        command(b"EHLO client.example\r\n")
        command(b"MAIL FROM:<a@client.example>\r\n")
        command(b"RCPT TO:<b@agents.example>\r\n")
        assert command(b"DATA\r\n").startswith(b"354")
        trailer = b"NOOP\r\n" if pipelined else b""
        pieces = [section[i:j] for i, j in zip([0, *cuts], [*cuts, len(section)], strict=True)]
        pieces[-1] += trailer
        for piece in pieces:
            sock.sendall(piece)
        after_data = replies.readline()
        noop = replies.readline() if pipelined else command(b"NOOP\r\n")
        command(b"QUIT\r\n")
    return stock_form(after_data), stock_form(noop), server.handler.contents[before:]


# Line texts that exercise the grammar: dots where stuffing and the end line care, bare CR
# and LF (which do not end a line), and lengths around aiosmtpd's limit and beyond the
# listener's read limit.
short = st.binary(max_size=12).map(lambda b: bytes(b"a.\r\n "[x % 5] for x in b))
sized = st.builds(
    lambda n, head: (head + b"x" * n)[:n],
    st.sampled_from(
        [TEXT_LINE_LIMIT - 3, TEXT_LINE_LIMIT - 2, TEXT_LINE_LIMIT - 1, TEXT_LINE_LIMIT, TEXT_LINE_LIMIT + 1]
        + [TEXT_LINE_LIMIT + 2, 2 * TEXT_LINE_LIMIT, READ_LIMIT + 10]
    ),
    st.sampled_from([b"", b".", b"..", b"x."]),
)
text = st.one_of(short, short, short, sized).filter(lambda t: t != b"." and b"\r\n" not in t)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    lines=st.lists(text, max_size=40),
    seed=st.integers(0, 2**32),
    pieces=st.integers(1, 6),
    pipelined=st.booleans(),
)
@example(lines=[], seed=0, pieces=1, pipelined=False)
@example(lines=[b"..", b"...x", b"end."], seed=1, pieces=3, pipelined=True)
@example(lines=[b"x" * (SIZE_LIMIT // 2)] * 3, seed=2, pieces=1, pipelined=False)
@example(lines=[b"y" * (READ_LIMIT + 10), b"tail."], seed=3, pieces=4, pipelined=True)
def test_same_answers_as_aiosmtpd(
    servers: tuple[Server, Server], lines: list[bytes], seed: int, pieces: int, pipelined: bool
) -> None:
    # Lines joined by CRLF, though a line ending in a bare CR makes CR CR LF: the stream is
    # what it is, and both readers must agree on it.
    section = b"".join(line + b"\r\n" for line in lines) + b".\r\n"
    cuts = sorted(random.Random(seed).sample(range(1, len(section)), min(pieces - 1, len(section) - 1)))
    ours, theirs = (converse(server, section, cuts, pipelined) for server in servers)
    assert ours == theirs


def test_the_usual_mail_is_unstuffed_and_whole(servers: tuple[Server, Server]) -> None:
    section = b"Subject: hi\r\n\r\n..leading dot\r\nend.\r\n\r\n.\r\n"
    after_data, noop, contents = converse(servers[0], section, [5, 20], pipelined=True)
    assert (after_data, noop) == (b"250 OK\r\n", b"250 OK\r\n")
    assert contents == [b"Subject: hi\r\n\r\n.leading dot\r\nend.\r\n\r\n"]


@pytest.mark.parametrize(
    "section, reply",
    [
        (b"x" * TEXT_LINE_LIMIT + b"\r\n.\r\n", STOCK_TOO_LONG),
        ((b"y" * 998 + b"\r\n") * 7 + b".\r\n", b"552 Error: Too much mail data\r\n"),
    ],
)
def test_faults_are_refused_after_the_end_line(servers: tuple[Server, Server], section: bytes, reply: bytes) -> None:
    after_data, noop, contents = converse(servers[0], section, [], pipelined=False)
    # The session carries on: the next command is answered, and nothing was handed over.
    assert (after_data, noop, contents) == (reply, b"250 OK\r\n", [])


def test_a_long_command_is_still_refused(servers: tuple[Server, Server]) -> None:
    # The listener's reader takes longer lines than aiosmtpd's; commands keep their limit.
    answers = []
    for server in servers:
        with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
            replies = sock.makefile("rb")
            replies.readline()
            sock.sendall(b"NOOP " + b"x" * 2000 + b"\r\nNOOP\r\n")
            answers.append((stock_form(replies.readline()), stock_form(replies.readline())))
    assert answers[0] == answers[1] == (b"500 Command line too long\r\n", b"250 OK\r\n")


def read_section(pieces: list[bytes], size_limit: int) -> tuple[bytes, str]:
    """``data_read`` on a stream reader (the listener's limit) fed ``pieces`` in turn."""

    async def run() -> tuple[bytes, str]:
        reader = asyncio.StreamReader(limit=READ_LIMIT)

        async def feed() -> None:
            for piece in pieces:
                reader.feed_data(piece)
                await asyncio.sleep(0)

        feeding = asyncio.create_task(feed())
        result = await data_read(reader, size_limit)
        await feeding
        return result

    return asyncio.run(run())


def test_the_limit_is_judged_on_whole_lines_however_the_bytes_arrive() -> None:
    # Short lines up to just under the read limit, then a line too long that crosses the
    # size limit. The bytes arrive so that the first large read ends a few bytes into the
    # long line, past the size limit: the reader must not decide there (too much data)
    # but on the whole line, which aiosmtpd refuses as too long before counting it.
    short_lines = b"z" * 98 + b"\r\n"
    head = short_lines * ((READ_LIMIT - 100) // len(short_lines))
    long_line = b"L" * 3000 + b"\r\n"
    size_limit = len(head) + 40
    pieces = [head + long_line[:100], long_line[100:] + b".\r\n"]
    assert read_section(pieces, size_limit) == (b"", REPLY_TOO_LONG)
    # The same bytes, with the long line one that fits: too much data.
    fits = b"F" * 900 + b"\r\n"
    assert read_section([head + fits[:100], fits[100:] + b".\r\n"], size_limit) == (b"", REPLY_TOO_MUCH)
    assert read_section([head + fits[:100], fits[100:] + b".\r\n"], len(head) + len(fits)) == (head + fits, "")


def test_longest_line_of_a_large_message() -> None:
    # Over a mebibyte the lines are measured without splitting the message into copies.
    rng = random.Random(7)
    lines = [b"q" * rng.randrange(0, 1200) for _ in range(3000)]
    data = b"\r\n".join(lines) + b"\rx\n"
    assert len(data) > 1 << 20
    assert _longest_line(data) == max(map(len, data.split(b"\r\n")))


def test_a_client_that_hangs_up_mid_message_delivers_nothing(servers: tuple[Server, Server]) -> None:
    # Half a message, then the connection closes: nothing reaches the handler, and the
    # session's end does not disturb the next client.
    for server in servers:
        before = len(server.handler.contents)
        with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
            replies = sock.makefile("rb")
            replies.readline()
            sock.sendall(b"EHLO c\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<b@agents.example>\r\nDATA\r\n")
            while not replies.readline().startswith(b"354"):
                pass
            sock.sendall(b"Subject: cut\r\n\r\nhalf a line .\r\n")
        after_data, noop, contents = converse(server, b"Subject: next\r\n\r\nwhole\r\n.\r\n", [], pipelined=False)
        assert (after_data, noop) == (b"250 OK\r\n", b"250 OK\r\n")
        assert server.handler.contents[before:] == contents == [b"Subject: next\r\n\r\nwhole\r\n"]

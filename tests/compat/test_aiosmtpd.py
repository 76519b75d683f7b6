"""compat.aiosmtpd: the installed aiosmtpd is one it was checked against, the internals it
overrides or reads are still there, and a session built on it answers a whole SMTP
conversation (commands, paths, DATA, the transaction reset after it, a client that hangs
up mid-DATA) as stock aiosmtpd does, over real sockets."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd import controller as aiosmtpd_controller
from aiosmtpd import smtp as aiosmtpd_smtp

from compat import aiosmtpd
from tests.conftest import free_port


def test_the_installed_aiosmtpd_is_one_the_adaptation_was_checked_against() -> None:
    installed = importlib.metadata.version("aiosmtpd")
    assert installed in aiosmtpd.CHECKED_VERSIONS, (
        f"aiosmtpd {installed} is installed, but compat/aiosmtpd.py was checked against "
        f"{aiosmtpd.CHECKED_VERSIONS}: compare its smtp_DATA with aiosmtpd's, re-check every internal its "
        "docstring lists (_reader, _writer, _decode_data, _set_post_data_state, _call_handler_hook, _getaddr, "
        "Controller._create_server/_trigger_server/_factory_invoker), run tests/compat/, tests/mail/test_smtp_*.py "
        "and tests/reliability/test_smtp_listener_crash.py, then add the version to CHECKED_VERSIONS."
    )


@pytest.mark.parametrize(
    ("owner", "name", "parameters"),
    [
        (aiosmtpd_smtp.SMTP, "_set_post_data_state", ["self"]),
        (aiosmtpd_smtp.SMTP, "_call_handler_hook", ["self", "command", "args"]),
        (aiosmtpd_smtp.SMTP, "_getaddr", ["self", "arg"]),
        (aiosmtpd_smtp.SMTP, "smtp_DATA", ["self", "arg"]),
        (aiosmtpd_smtp.SMTP, "_cb_client_connected", ["self", "reader", "writer"]),
        # Public, but the listener's enhanced codes, EHLO keywords and AUTH depend on them.
        (aiosmtpd_smtp.SMTP, "push", ["self", "status"]),
        (aiosmtpd_smtp.SMTP, "smtp_EHLO", ["self", "hostname"]),
        (aiosmtpd_smtp.SMTP, "smtp_HELO", ["self", "hostname"]),
        (aiosmtpd_smtp.SMTP, "challenge_auth", ["self", "challenge", "encode_to_b64", "log_client_response"]),
        (aiosmtpd_controller.Controller, "_create_server", ["self"]),
        (aiosmtpd_controller.Controller, "_trigger_server", ["self"]),
        (aiosmtpd_controller.Controller, "_factory_invoker", ["self"]),
    ],
)
def test_the_internals_it_overrides_or_calls_are_still_there(owner: type, name: str, parameters: list[str]) -> None:
    assert list(inspect.signature(getattr(owner, name)).parameters) == parameters


def test_it_refuses_to_decode_the_message() -> None:
    with pytest.raises(ValueError):
        aiosmtpd.SMTP(object(), decode_data=True)
    assert aiosmtpd.SMTP(object()).decode_data is False


class LineSMTP(aiosmtpd.SMTP):
    """compat's session with the simplest data_read: a line at a time, no limits."""

    async def data_read(self, reader: asyncio.StreamReader, size_limit: int | None) -> tuple[bytes, str]:
        lines = []
        while (line := await reader.readuntil(b"\r\n")) != b".\r\n":
            lines.append(line[1:] if line.startswith(b".") else line)
        return b"".join(lines), ""


class Recorder:
    def __init__(self) -> None:
        self.contents: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 stored"


class Server(aiosmtpd.Controller):
    def __init__(self, session_class: type[aiosmtpd_smtp.SMTP], handler: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=free_port())
        self.session_class = session_class

    def factory(self) -> aiosmtpd_smtp.SMTP:
        return self.session_class(self.handler, enable_SMTPUTF8=True)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    started = {
        "ours": Server(LineSMTP, Recorder()),
        "stock": Server(aiosmtpd_smtp.SMTP, Recorder()),
        "ours, no hook": Server(LineSMTP, object()),
        "stock, no hook": Server(aiosmtpd_smtp.SMTP, object()),
    }
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


CONVERSATION = [
    b"DATA\r\n",  # before HELO
    b"EHLO client.example\r\n",
    b"DATA\r\n",  # before RCPT
    b"MAIL FROM:<first.last+tag@client.example> SIZE=100 BODY=8BITMIME\r\n",
    b'RCPT TO:<"quoted local"@agents.example>\r\n',
    b"RCPT TO:<b@agents.example> (comment)\r\n",
    b"RCPT TO:<not a path\r\n",
    b"DATA now\r\n",
    b"DATA\r\n",
    b"Subject: hi\r\n\r\n..stuffed\r\n.\r\n",
    b"DATA\r\n",  # the transaction ended with the last DATA
    b"MAIL FROM:<>\r\n",
    b"RCPT TO:<c@agents.example>\r\n",
    b"DATA\r\n",
    b"\r\n.\r\n",
    b"RSET\r\n",
]


def converse(server: Server, lines: list[bytes], *, hang_up_in_data: bool = False) -> list[bytes]:
    with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
        replies = sock.makefile("rb")
        transcript = [replies.readline().split(b" ")[0]]  # the greeting names the host
        for line in lines:
            sock.sendall(line)
            while (reply := replies.readline())[3:4] == b"-":
                pass
            transcript.append(reply)
        if hang_up_in_data:
            sock.sendall(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<d@agents.example>\r\nDATA\r\nSubject: cut\r\n")
            transcript += [replies.readline() for _ in range(3)]
    return transcript


@pytest.mark.parametrize("hook", [True, False])
def test_a_session_on_it_answers_as_stock_aiosmtpd(servers: dict[str, Server], hook: bool) -> None:
    ours, stock = (servers[name if hook else f"{name}, no hook"] for name in ("ours", "stock"))
    assert converse(ours, CONVERSATION) == converse(stock, CONVERSATION)
    assert getattr(ours.handler, "contents", None) == getattr(stock.handler, "contents", None)


def test_a_client_that_hangs_up_in_data_leaves_both_serving(servers: dict[str, Server]) -> None:
    ours, stock = servers["ours"], servers["stock"]
    before = len(ours.handler.contents), len(stock.handler.contents)
    assert converse(ours, [b"EHLO c\r\n"], hang_up_in_data=True) == converse(
        stock, [b"EHLO c\r\n"], hang_up_in_data=True
    )
    assert (len(ours.handler.contents), len(stock.handler.contents)) == before
    assert converse(ours, CONVERSATION[1:3]) == converse(stock, CONVERSATION[1:3])

"""The handoff window of a send (mail/dispatch.py) spans the relay's part of the conversation
and no more. A worker SIGKILLed while the relay answers EHLO had handed nothing over: its
claim is released and the message sent after all. A worker killed while the relay answers
QUIT, after its 250, has recorded the message as sent already. And a QUIT that fails after
the 250 changes nothing: the message is sent, once.

The worker is a real process (``manage.py shell``) talking SMTP to a real relay (aiosmtpd)
that stalls on one command until the test has killed it."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from assmbl.celery import app as celery_app
from mail.dispatch import message_dispatch, messages_claims_expire
from mail.models import Message
from mail.sending import Outgoing, message_send
from tests.conftest import free_port
from tests.reliability.procs import ROOT, child_env, stop
from webhooks.models import Event

RELAY_BACKEND = "mail.backends.RelayEmailBackend"


class _Relay:
    """An SMTP relay that records the Message-ID of what it accepted and answers one
    command, the first time it comes, only once ``release`` is set (``stall``), or with a
    reply line longer than any client reads (``overlong``)."""

    def __init__(self, *, stall: str = "", overlong: str = "") -> None:
        self.stall, self.overlong = stall, overlong
        self.stalled, self.release = threading.Event(), threading.Event()
        self.accepted: list[str] = []

    async def _answer(self, command: str, reply: str) -> str:
        if command == self.stall and not self.stalled.is_set():
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return f"{reply[:3]} {'x' * 9000}" if command == self.overlong else reply

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        last = await self._answer("EHLO", responses[-1])
        return [*responses[:-1], last]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.accepted.append(email.message_from_bytes(envelope.original_content).get("Message-ID", ""))
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return await self._answer("QUIT", "221 Bye")


def _relay(**kwargs: str) -> Iterator[tuple[_Relay, str]]:
    relay = _Relay(**kwargs)
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield relay, f"smtp://127.0.0.1:{port}"
    finally:
        relay.release.set()
        controller.stop()


@pytest.fixture
def relay_stalling_in_ehlo() -> Iterator[tuple[_Relay, str]]:
    yield from _relay(stall="EHLO")


@pytest.fixture
def relay_stalling_in_quit() -> Iterator[tuple[_Relay, str]]:
    yield from _relay(stall="QUIT")


@pytest.fixture
def relay_garbling_quit() -> Iterator[tuple[_Relay, str]]:
    yield from _relay(overlong="QUIT")


def _queued(owner: Any, monkeypatch: pytest.MonkeyPatch) -> Message:
    # Queue the send task instead of running it here: the worker process sends it.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setitem(celery_app.conf, "broker_url", "memory://")
    return message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))


def _kill_the_worker_when_the_relay_stalls(message: Message, relay: _Relay, relay_url: str, settings: Any) -> None:
    data_dir = Path(settings.STORAGES["default"]["OPTIONS"]["location"]).parent
    env = child_env(data_dir, MAIL_OUTBOUND="smtp", OUTBOUND_SMTP_URL=relay_url)
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from mail.dispatch import message_dispatch; message_dispatch(message_id={message.id!r})",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not relay.stalled.wait(0.1):
        if worker.poll() is not None or time.monotonic() > deadline:
            stop(worker)
            assert worker.stderr is not None
            pytest.fail(f"the worker never reached the stalled command: {worker.stderr.read().decode()[-2000:]}")
    stop(worker)
    relay.release.set()


def test_a_worker_killed_while_the_relay_answers_ehlo_is_retried_not_in_doubt(
    transactional_db: Any, owner: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, relay_stalling_in_ehlo: Any
) -> None:
    relay, relay_url = relay_stalling_in_ehlo
    message = _queued(owner, monkeypatch)

    _kill_the_worker_when_the_relay_stalls(message, relay, relay_url, settings)

    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED and message.provider_message_id.startswith("claim:")
    assert messages_claims_expire(older_than=dt.timedelta(0)) == []  # released, not failed in doubt
    settings.EMAIL_BACKEND, settings.OUTBOUND_SMTP_URL = RELAY_BACKEND, relay_url
    sent = message_dispatch(message_id=message.id)  # the retry
    assert sent is not None and sent.status == Message.Status.SENT
    assert relay.accepted == [message.internet_message_id]


def test_a_worker_killed_while_the_relay_answers_quit_has_recorded_the_send(
    transactional_db: Any, owner: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, relay_stalling_in_quit: Any
) -> None:
    relay, relay_url = relay_stalling_in_quit
    message = _queued(owner, monkeypatch)

    _kill_the_worker_when_the_relay_stalls(message, relay, relay_url, settings)

    message.refresh_from_db()
    assert relay.accepted == [message.internet_message_id]
    assert (message.status, message.provider_message_id) == (Message.Status.SENT, message.internet_message_id)
    assert Event.objects.filter(agent=owner.agent, type="message.sent").count() == 1
    assert messages_claims_expire(older_than=dt.timedelta(0)) == []


@pytest.mark.django_db
def test_a_relay_that_garbles_its_quit_after_the_250_gets_the_message_once(
    owner: Any, settings: Any, relay_garbling_quit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay, relay_url = relay_garbling_quit
    settings.EMAIL_BACKEND, settings.OUTBOUND_SMTP_URL = RELAY_BACKEND, relay_url
    # The send task runs on commit, which this test's transaction never reaches: still queued.
    message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))

    first = message_dispatch(message_id=message.id)
    again = message_dispatch(message_id=message.id)  # a retry, had the first call raised

    assert first is not None and first.status == Message.Status.SENT
    assert again is not None and again.status == Message.Status.SENT
    assert relay.accepted == [message.internet_message_id]
    assert "closing the connection" in caplog.text

"""Shared fixtures: personas (an owner agent, a teammate, a stranger), API clients that
hold their tokens, a helper that pushes raw bytes through the real pipeline, and a live
SMTP listener on a free loopback port."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from directory.models import Account, Agent, ApiToken
from directory.services import agent_create, token_create
from mail.ingest import Accepted, delivery_accept
from mail.models import InboundDelivery


@dataclass
class Persona:
    agent: Agent
    token: str
    client: APIClient

    @property
    def address(self) -> str:
        return self.agent.address


def _persona(agent_id: str, account: Account) -> Persona:
    agent, issued = agent_create(agent_id=agent_id, account=account)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return Persona(agent=agent, token=issued.plaintext, client=client)


@pytest.fixture
def account(db: Any) -> Account:
    return Account.objects.create(name="acme")


@pytest.fixture
def owner(account: Account) -> Persona:
    """The agent whose mailbox a test is about."""
    return _persona("owner", account)


@pytest.fixture
def teammate(account: Account) -> Persona:
    """Another agent of the same account: must still get 404 on the owner's mail."""
    return _persona("teammate", account)


@pytest.fixture
def stranger(db: Any) -> Persona:
    """An agent of another account."""
    return _persona("stranger", Account.objects.create(name="elsewhere"))


@pytest.fixture
def operator(account: Account) -> APIClient:
    issued = token_create(kind=ApiToken.Kind.OPERATOR, account=account)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def deliver(django_capture_on_commit_callbacks: Any) -> Callable[..., Accepted]:
    """Push raw bytes through the real pipeline (store, commit, on-commit task, index)."""

    def _deliver(
        raw: bytes, *, to: list[str] | str, source: str = InboundDelivery.Source.SMTP, **kwargs: Any
    ) -> Accepted:
        recipients = [to] if isinstance(to, str) else to
        with django_capture_on_commit_callbacks(execute=True):
            return delivery_accept(raw=raw, source=source, envelope_recipients=recipients, **kwargs)

    return _deliver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_listener(transactional_db: Any) -> Iterator[tuple[str, int]]:
    """The real aiosmtpd listener, as `manage.py smtpd` runs it."""
    from mail.smtp import smtp_controller

    port = free_port()
    controller = smtp_controller("127.0.0.1", port)
    controller.start()
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()

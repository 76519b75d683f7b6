"""The SDK against a live server: pytest-django's ``live_server`` (a real HTTP server in a
thread, transactional database) and real agent tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agentmail_client import AgentMailClient
from directory.models import Account, Agent, ApiToken
from directory.services import agent_create, token_create
from mail.ingest import Accepted, delivery_accept
from mail.models import InboundDelivery
from tests.mime import build_mail


@dataclass
class LiveAgent:
    agent: Agent
    token: str
    base_url: str

    @property
    def address(self) -> str:
        return self.agent.address

    def client(self, **kwargs: Any) -> AgentMailClient:
        return AgentMailClient(base_url=self.base_url, token=self.token, **kwargs)


@pytest.fixture
def base_url(live_server: Any, transactional_db: Any) -> str:
    return f"{live_server.url}/v1"


@pytest.fixture
def live_account(transactional_db: Any) -> Account:
    return Account.objects.create(name="sdk")


@pytest.fixture
def live_agent(base_url: str, live_account: Account) -> LiveAgent:
    agent, issued = agent_create(agent_id="sdkagent", account=live_account)
    return LiveAgent(agent=agent, token=issued.plaintext, base_url=base_url)


@pytest.fixture
def other_agent(base_url: str, live_account: Account) -> LiveAgent:
    agent, issued = agent_create(agent_id="otheragent", account=live_account)
    return LiveAgent(agent=agent, token=issued.plaintext, base_url=base_url)


@pytest.fixture
def operator_token(live_account: Account) -> str:
    return token_create(kind=ApiToken.Kind.OPERATOR, account=live_account).plaintext


@pytest.fixture
def client(live_agent: LiveAgent) -> Iterator[AgentMailClient]:
    with live_agent.client() as sdk:
        yield sdk


@pytest.fixture
def receive(transactional_db: Any) -> Callable[..., Accepted]:
    """Real MIME through the real ingestion pipeline (autocommit: the on-commit task runs
    at once), so the live server sees it."""

    def _receive(agent: LiveAgent, **mail: Any) -> Accepted:
        raw = build_mail(to=agent.address, **mail)
        return delivery_accept(raw=raw, source=InboundDelivery.Source.SMTP, envelope_recipients=[agent.address])

    return _receive

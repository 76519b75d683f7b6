"""Retries over real sockets: a connection dropped after the server did the work, 429 with
Retry-After, 5xx, and a refused connection."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from agentmail_client import (
    AgentMailClient,
    AsyncAgentMailClient,
    RateLimitError,
    ServerError,
    TransportError,
)
from directory.models import Agent
from mail.models import Message
from tests.conftest import free_port
from tests.factories import MessageFactory
from tests.sdk.conftest import LiveAgent
from tests.sdk.proxy import DroppingProxy, Scripted, ScriptedServer


@pytest.fixture
def proxy(live_server: Any) -> Iterator[DroppingProxy]:
    parts = urlsplit(live_server.url)
    p = DroppingProxy((parts.hostname or "127.0.0.1", parts.port or 80), drop=1)
    yield p
    p.close()


def _idempotency_keys(proxy: DroppingProxy) -> list[str]:
    return [m.group(1).decode() for r in proxy.requests if (m := re.search(rb"(?im)^idempotency-key: *(\S+)", r))]


def test_a_send_retried_after_a_dropped_connection_sends_once(live_agent: LiveAgent, proxy: DroppingProxy) -> None:
    with AgentMailClient(proxy.url("/v1"), live_agent.token) as client:
        result = client.send_mail(to="recipient@example.com", subject="Exactly once", body="Hi")

    sent = Message.objects.filter(agent=live_agent.agent, direction=Message.Direction.OUTBOUND, subject="Exactly once")
    assert len(proxy.requests) == 2  # the dropped one reached the server, then the retry
    keys = _idempotency_keys(proxy)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert sent.count() == 1
    assert result["MessageID"] == sent.get().id


def test_the_async_client_retries_a_dropped_send_once_too(live_agent: LiveAgent, proxy: DroppingProxy) -> None:
    async def send() -> dict[str, Any]:
        async with AsyncAgentMailClient(proxy.url("/v1"), live_agent.token) as client:
            return await client.send_mail(to="x@example.com", subject="Async once", body="Hi", idempotency_key="k-1")

    result = asyncio.run(send())

    sent = Message.objects.filter(agent=live_agent.agent, direction=Message.Direction.OUTBOUND, subject="Async once")
    assert _idempotency_keys(proxy) == ["k-1", "k-1"]
    assert sent.count() == 1 and result["MessageID"] == sent.get().id


def test_an_idempotent_patch_is_retried_after_a_dropped_connection(live_agent: LiveAgent, proxy: DroppingProxy) -> None:
    message = MessageFactory(agent=live_agent.agent)

    with AgentMailClient(proxy.url("/v1"), live_agent.token) as client:
        item = client.patch_message_labels(message.id, add=["urgent"])

    assert len(proxy.requests) == 2
    assert item["Labels"] == ["urgent"]


def test_a_keyless_post_is_not_retried_after_the_server_got_it(operator_token: str, proxy: DroppingProxy) -> None:
    with AgentMailClient(proxy.url("/v1"), operator_token) as client, pytest.raises(TransportError) as caught:
        client.create_agent("dropped")

    assert isinstance(caught.value, ConnectionError) and caught.value.status is None
    assert len(proxy.requests) == 1
    assert Agent.objects.filter(agent_id="dropped").count() == 1


def test_it_honours_retry_after_on_429_then_succeeds() -> None:
    server = ScriptedServer(
        [Scripted(429, {"error": {"code": "rate_limited", "message": "slow", "details": None}}, {"Retry-After": "1"})]
    )
    try:
        started = time.monotonic()
        with AgentMailClient(server.url(), "tok") as client:
            assert client.list_inbox() == {"ok": True}
        assert time.monotonic() - started >= 1.0
        assert len(server.requests) == 2
    finally:
        server.close()


def test_it_raises_rate_limit_error_with_retry_after_when_retries_run_out() -> None:
    body = {"error": {"code": "rate_limited", "message": "slow", "details": None}}
    server = ScriptedServer([Scripted(429, body, {"Retry-After": "0"}) for _ in range(3)])
    try:
        with AgentMailClient(server.url(), "tok", max_retries=2) as client, pytest.raises(RateLimitError) as caught:
            client.get_unread_count()
        assert caught.value.retry_after == 0 and caught.value.code == "rate_limited" and caught.value.status == 429
        assert len(server.requests) == 3
    finally:
        server.close()


def test_it_retries_5xx_for_sends_with_the_same_key_but_not_for_keyless_posts() -> None:
    oops = {"error": {"code": "internal_error", "message": "oops", "details": None}}
    server = ScriptedServer(
        [Scripted(503, oops), Scripted(202, {"MessageID": "msg_1", "Status": "queued"}), Scripted(500, oops)]
    )
    try:
        with AgentMailClient(server.url(), "tok") as client:
            assert client.send_mail("a@example.com", "s", "b")["MessageID"] == "msg_1"
            with pytest.raises(ServerError) as caught:
                client.create_webhook("https://example.com/hook")
        keys = [headers["idempotency-key"] for _, path, headers in server.requests[:2]]
        assert keys[0] == keys[1] and len(keys[0]) == 36
        assert caught.value.status == 500 and caught.value.code == "internal_error"
        assert len(server.requests) == 3
        assert server.requests[0][2]["authorization"] == "Bearer tok"
    finally:
        server.close()


def test_a_refused_connection_is_retried_then_raises_transport_error() -> None:
    with AgentMailClient(f"http://127.0.0.1:{free_port()}/v1", "tok", max_retries=1) as client:
        with pytest.raises(TransportError):
            client.list_inbox()


def test_a_delete_whose_answer_was_dropped_succeeds_on_the_retry(live_agent: LiveAgent, proxy: DroppingProxy) -> None:
    message = MessageFactory(agent=live_agent.agent)

    with AgentMailClient(proxy.url("/v1"), live_agent.token) as client:
        assert client.delete_message(message.id) is None  # the retry's 404 means "already gone"

    assert len(proxy.requests) == 2
    assert not Message.objects.filter(pk=message.id).exists()

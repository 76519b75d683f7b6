"""Sending through the SDK between two agents: send, reply, forward, the thread, the sent
listing, and idempotency keys."""

from __future__ import annotations

from typing import Any

import pytest

from agentmail_client import ConflictError
from mail.models import Message
from tests.sdk.conftest import LiveAgent


@pytest.fixture(autouse=True)
def embedded_backend(settings: Any) -> None:
    # pytest-django swaps in the locmem backend; agent-to-agent mail needs the embedded one.
    settings.EMAIL_BACKEND = "mail.backends.LocalEmailBackend"


def test_an_agent_to_agent_chain_is_one_thread(live_agent: LiveAgent, other_agent: LiveAgent) -> None:
    with live_agent.client() as alice, other_agent.client() as bob:
        sent = alice.send_mail(to=other_agent.address, subject="Plan", body="Shall we?")
        received = bob.list_inbox()["items"][0]
        bob.reply(received["MessageID"], "Yes.")
        answer = alice.wait_for_message(q="Plan", timeout=10)
        alice.forward(answer["MessageID"], to="boss@example.com", body="FYI")

        thread = alice.get_thread(answer["ThreadID"])
        sent_pages = list(alice.iter_sent_pages(page_size=1))

    assert sent["Status"] in ("queued", "sent") and received["Subject"] == "Plan"
    assert answer["Subject"] == "Re: Plan" and answer["From"].endswith(other_agent.address)
    assert [m["Direction"] for m in thread["items"]] == ["outbound", "inbound", "outbound"]
    assert [m["Subject"] for page in sent_pages for m in page["items"]] == ["Plan", "Fwd: Re: Plan"]


def test_the_same_idempotency_key_sends_once_and_a_different_body_conflicts(live_agent: LiveAgent) -> None:
    with live_agent.client() as client:
        first = client.send_mail("x@example.com", "Once", "Hi", idempotency_key="order-42")
        again = client.send_mail("x@example.com", "Once", "Hi", idempotency_key="order-42")
        with pytest.raises(ConflictError) as caught:
            client.send_mail("x@example.com", "Once", "Changed", idempotency_key="order-42")

    assert first["MessageID"] == again["MessageID"]
    assert caught.value.code == "idempotency_key_reused"
    assert Message.objects.filter(agent=live_agent.agent, subject="Once").count() == 1

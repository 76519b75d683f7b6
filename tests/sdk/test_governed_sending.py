"""Governed sending through the SDK against a live server: drafts, scheduled send and
cancel, and the operator's outbound policy, approvals and suppressions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from agentmail_client import AgentMailClient, ConflictError, NotFoundError
from mail.models import Message, Suppression
from tests.sdk.conftest import LiveAgent


@pytest.fixture(autouse=True)
def locmem_backend(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_a_scheduled_draft_is_sent_then_canceled(live_agent: LiveAgent) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with live_agent.client() as client:
        draft = client.create_draft(to="bob@example.com", subject="Plan", body="Go.", send_at=later)
        client.update_draft(draft["DraftID"], body="Go now.")
        sent = client.send_draft(draft["DraftID"], idempotency_key="plan-1")
        canceled = client.cancel_message(sent["MessageID"])
        with pytest.raises(ConflictError):
            client.send_draft(draft["DraftID"])
        kept = client.get_draft(draft["DraftID"])

    assert sent["Status"] == "scheduled"
    assert canceled == {"MessageID": sent["MessageID"], "Status": "canceled"}
    assert Message.objects.get(pk=sent["MessageID"]).subject == "Plan"
    assert kept["MessageID"] == sent["MessageID"] and kept["Body"] == "Go now."


def test_cancel_after_the_send_is_a_conflict(live_agent: LiveAgent) -> None:
    with live_agent.client() as client:
        sent = client.send_mail("bob@example.com", "Now", "b")
        with pytest.raises(ConflictError) as caught:
            client.cancel_message(sent["MessageID"])

    assert caught.value.code == "already_sent"


def test_an_operator_requires_approval_then_approves(live_agent: LiveAgent, operator_token: str, base_url: str) -> None:
    with AgentMailClient(base_url=base_url, token=operator_token) as operator, live_agent.client() as agent:
        policy = operator.update_agent(live_agent.agent.agent_id, outbound={"approval": "always", "max_per_day": 10})
        held = agent.send_mail("bob@example.com", "Offer", "20% off")
        pending = operator.list_approvals()
        approved = operator.approve_message(held["MessageID"], note="ok")
        second = agent.send_mail("carol@example.com", "Other", "b")
        rejected = operator.reject_message(second["MessageID"])

    assert policy["outbound"]["approval"] == "always" and policy["outbound"]["max_per_day"] == 10
    assert held["Status"] == "pending_approval"
    assert [i["MessageID"] for i in pending["items"]] == [held["MessageID"]]
    assert approved["Status"] in ("queued", "sent") and rejected["Status"] == "rejected"


def test_an_operator_lists_and_removes_suppressions(live_agent: LiveAgent, operator_token: str, base_url: str) -> None:
    Suppression.objects.create(account=live_agent.agent.account, address="bob@example.com", reason="bounce")
    with AgentMailClient(base_url=base_url, token=operator_token) as operator:
        listed = operator.list_suppressions()
        operator.delete_suppression("bob@example.com")
        with pytest.raises(NotFoundError):
            operator.delete_suppression("bob@example.com")

    assert [i["address"] for i in listed["items"]] == ["bob@example.com"]

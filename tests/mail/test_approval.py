"""Approval: mail held by the agent's policy waits as pending_approval; an operator of the
agent's account approves (it goes out) or rejects it (it never reaches the transport),
each decision audited and announced by an event."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail as outbox
from django.utils import timezone
from rest_framework.test import APIClient

from directory.models import ApiToken, OutboundPolicy
from directory.services import token_create
from mail.dispatch import message_dispatch
from mail.models import ApprovalDecision, Message
from mail.outbound import messages_release_due
from webhooks.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(owner: Any, post: Any, settings: Any) -> Message:
    # locmem: the transport is a list we can read.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboundPolicy.objects.create(agent=owner.agent, approval=OutboundPolicy.Approval.ALWAYS)
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Offer", "body": "20% off"})
    assert response.json()["Status"] == "pending_approval"
    return Message.objects.get(pk=response.json()["MessageID"])


def _decide(operator: Any, message: Message, verb: str, django_capture_on_commit_callbacks: Any, **body: Any) -> Any:
    with django_capture_on_commit_callbacks(execute=True):
        return operator.post(f"/v1/approvals/{message.id}/{verb}", body, format="json")


def test_an_approved_message_goes_out_and_the_decision_is_audited(
    operator: Any, held: Message, django_capture_on_commit_callbacks: Any
) -> None:
    assert outbox.outbox == []

    response = _decide(operator, held, "approve", django_capture_on_commit_callbacks, note="checked the price")

    assert response.status_code == 200, response.content
    assert response.json() == {"MessageID": held.id, "Status": "queued"}
    held.refresh_from_db()
    assert held.status == Message.Status.SENT
    assert len(outbox.outbox) == 1
    decision = ApprovalDecision.objects.get(message=held)
    assert decision.decision == "approved" and decision.note == "checked the price"
    assert decision.decided_by.startswith("operator:") and decision.decided_at is not None
    types = list(Event.objects.filter(agent=held.agent).order_by("seq").values_list("type", flat=True))
    assert types == ["message.pending_approval", "message.approved", "message.sent"]
    approved = Event.objects.get(type="message.approved")
    assert approved.payload["Note"] == "checked the price"


def test_a_rejected_message_never_reaches_the_transport(
    operator: Any, held: Message, django_capture_on_commit_callbacks: Any
) -> None:
    response = _decide(operator, held, "reject", django_capture_on_commit_callbacks, note="off-brand")

    assert response.status_code == 200
    assert response.json()["Status"] == "rejected"
    # Even a stray send task or release for it sends nothing.
    message_dispatch(message_id=held.id)
    messages_release_due(now=timezone.now() + dt.timedelta(days=60))
    held.refresh_from_db()
    assert held.status == Message.Status.REJECTED
    assert outbox.outbox == []
    assert ApprovalDecision.objects.get(message=held).decision == "rejected"
    assert Event.objects.filter(type="message.rejected").count() == 1


def test_a_decided_message_cannot_be_decided_again(
    operator: Any, held: Message, django_capture_on_commit_callbacks: Any
) -> None:
    _decide(operator, held, "reject", django_capture_on_commit_callbacks)

    again = _decide(operator, held, "approve", django_capture_on_commit_callbacks)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_pending_approval"
    assert again.json()["error"]["details"] == {"Status": "rejected"}
    assert outbox.outbox == []


def test_an_approved_message_with_a_future_send_at_waits_for_it(
    owner: Any, operator: Any, post: Any, django_capture_on_commit_callbacks: Any
) -> None:
    OutboundPolicy.objects.create(agent=owner.agent, approval=OutboundPolicy.Approval.ALWAYS)
    send_at = timezone.now() + dt.timedelta(hours=1)
    held = post(
        owner, "/v1/send", {"to": "bob@example.com", "subject": "Later", "body": "b", "send_at": send_at.isoformat()}
    )
    message = Message.objects.get(pk=held.json()["MessageID"])

    response = _decide(operator, message, "approve", django_capture_on_commit_callbacks)

    assert response.json()["Status"] == "scheduled"
    assert Event.objects.filter(type="message.scheduled").count() == 1


def test_an_operator_lists_the_accounts_messages_awaiting_approval(operator: Any, held: Message) -> None:
    response = operator.get("/v1/approvals")

    assert response.status_code == 200
    assert [item["MessageID"] for item in response.json()["items"]] == [held.id]


def test_another_accounts_operator_gets_404_and_the_agent_itself_403(owner: Any, stranger: Any, held: Message) -> None:
    issued = token_create(kind=ApiToken.Kind.OPERATOR, account=stranger.agent.account)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")

    assert other.post(f"/v1/approvals/{held.id}/approve").status_code == 404
    assert other.get("/v1/approvals").json()["items"] == []
    assert owner.client.post(f"/v1/approvals/{held.id}/approve").status_code == 403
    held.refresh_from_db()
    assert held.status == Message.Status.PENDING_APPROVAL

"""Scheduled send, cancel and the undo window: a message with send_at (or under the agent's
undo_seconds) waits as scheduled in the database until the release claims it; until it is
handed to the transport it can be cancelled."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail as outbox
from django.utils import timezone

from directory.models import OutboundPolicy
from mail.dispatch import message_dispatch
from mail.models import Message
from mail.outbound import messages_release_due
from mail.tasks import release_scheduled_messages
from tests.factories import MessageFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(minutes=10)


@pytest.fixture(autouse=True)
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _schedule(owner: Any, post: Any, delay: dt.timedelta = LATER) -> Message:
    send_at = (timezone.now() + delay).isoformat()
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Later", "body": "b", "send_at": send_at})
    assert response.status_code == 202, response.content
    return Message.objects.get(pk=response.json()["MessageID"])


def test_a_scheduled_message_goes_out_once_when_due(
    owner: Any, post: Any, django_capture_on_commit_callbacks: Any
) -> None:
    message = _schedule(owner, post)
    assert release_scheduled_messages() == 0
    assert outbox.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        released = messages_release_due(now=timezone.now() + LATER + dt.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        again = messages_release_due(now=timezone.now() + LATER + dt.timedelta(seconds=2))

    assert released == [message.id] and again == []
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(outbox.outbox) == 1


def test_the_agent_cancels_a_scheduled_message(owner: Any, post: Any) -> None:
    message = _schedule(owner, post)

    response = owner.client.post(f"/v1/messages/{message.id}/cancel")

    assert response.status_code == 200
    assert response.json() == {"MessageID": message.id, "Status": "canceled"}
    assert messages_release_due(now=timezone.now() + LATER * 2) == []
    message_dispatch(message_id=message.id)
    assert outbox.outbox == []
    assert Event.objects.filter(type="message.canceled").count() == 1
    # Cancelling again says the same; no second event.
    assert owner.client.post(f"/v1/messages/{message.id}/cancel").json()["Status"] == "canceled"
    assert Event.objects.filter(type="message.canceled").count() == 1


def test_a_sent_message_cannot_be_canceled(owner: Any, post: Any) -> None:
    sent = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Now", "body": "b"})

    response = owner.client.post(f"/v1/messages/{sent.json()['MessageID']}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_sent"
    assert response.json()["error"]["details"] == {"Status": "sent"}


def test_a_queued_message_not_yet_claimed_by_a_worker_can_be_canceled(owner: Any) -> None:
    # No on-commit execution: the send task has not run, the message is queued.
    response = owner.client.post("/v1/send", {"to": "bob@example.com", "subject": "Now", "body": "b"}, format="json")
    message_id = response.json()["MessageID"]

    assert owner.client.post(f"/v1/messages/{message_id}/cancel").json()["Status"] == "canceled"
    message_dispatch(message_id=message_id)
    assert outbox.outbox == []


def test_a_message_of_another_agent_or_an_inbound_one_is_404(owner: Any, teammate: Any, post: Any) -> None:
    message = _schedule(owner, post)
    inbound = MessageFactory(agent=teammate.agent)

    assert teammate.client.post(f"/v1/messages/{message.id}/cancel").status_code == 404
    assert teammate.client.post(f"/v1/messages/{inbound.id}/cancel").status_code == 404
    message.refresh_from_db()
    assert message.status == Message.Status.SCHEDULED


def test_the_undo_window_holds_every_send_and_lets_it_be_canceled(owner: Any, post: Any) -> None:
    OutboundPolicy.objects.create(agent=owner.agent, undo_seconds=30)
    before = timezone.now()

    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Oops", "body": "b"})

    assert response.json()["Status"] == "scheduled"
    message = Message.objects.get(pk=response.json()["MessageID"])
    assert before + dt.timedelta(seconds=30) <= message.send_at <= timezone.now() + dt.timedelta(seconds=30)
    assert owner.client.post(f"/v1/messages/{message.id}/cancel").json()["Status"] == "canceled"
    assert outbox.outbox == []


def test_a_message_held_for_approval_can_be_canceled_by_its_agent(owner: Any, post: Any) -> None:
    OutboundPolicy.objects.create(agent=owner.agent, approval="always")
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Held", "body": "b"})

    canceled = owner.client.post(f"/v1/messages/{response.json()['MessageID']}/cancel")

    assert canceled.json()["Status"] == "canceled"

"""Dispatch (mail/dispatch.py): a queued message is handed to the email backend at most
once, a refusal the provider means is recorded as failed, anything else is retried; and
tracking moves an outbound message's status forward only."""

from __future__ import annotations

import datetime as dt
import smtplib
from typing import Any

import pytest
from django.core.mail.backends.base import BaseEmailBackend

from mail.dispatch import (
    TransientSendError,
    message_dispatch,
    message_fail,
    message_track,
    messages_queued_stale,
)
from mail.models import Message
from mail.sending import Outgoing, message_send
from webhooks.models import Event

pytestmark = pytest.mark.django_db

BACKEND = "tests.mail.test_dispatch.RefusingBackend"


class RefusingBackend(BaseEmailBackend):
    """A relay that answers every message with the SMTP error set on the class."""

    error: Exception = smtplib.SMTPRecipientsRefused({"bob@example.com": (550, b"no such user")})

    def send_messages(self, email_messages: Any) -> int:
        raise self.error


def _queued(persona: Any, to: str = "bob@example.com") -> Message:
    # The send task runs on commit, which a test transaction never reaches: still queued.
    return message_send(agent=persona.agent, outgoing=Outgoing(to=[to], subject="Hi", body="Hello"))


def _events(message: Message) -> list[str]:
    return list(Event.objects.filter(agent=message.agent).order_by("pk").values_list("type", flat=True))


def test_a_queued_message_is_sent_once_however_often_the_task_runs(
    owner: Any, teammate: Any, django_capture_on_commit_callbacks: Any
) -> None:
    message = _queued(owner, to=teammate.address)

    with django_capture_on_commit_callbacks(execute=True):  # the local backend's delivery
        first = message_dispatch(message_id=message.id)
        again = message_dispatch(message_id=message.id)

    assert first is not None and again is not None
    assert (first.status, again.status) == (Message.Status.SENT, Message.Status.SENT)
    assert Message.objects.filter(agent=teammate.agent, subject="Hi").count() == 1
    assert _events(message).count("message.sent") == 1


@pytest.mark.parametrize(
    "error",
    [
        smtplib.SMTPRecipientsRefused({"bob@example.com": (550, b"no such user")}),
        smtplib.SMTPDataError(554, b"message refused"),
        smtplib.SMTPSenderRefused(553, b"sender refused", "owner@agents.test"),
    ],
    ids=["recipients refused", "5xx data", "5xx sender"],
)
def test_a_permanent_refusal_marks_the_message_failed(settings: Any, owner: Any, error: Exception) -> None:
    settings.EMAIL_BACKEND = BACKEND
    RefusingBackend.error = error
    message = _queued(owner)

    failed = message_dispatch(message_id=message.id)

    assert failed is not None and failed.status == Message.Status.FAILED
    assert failed.status_detail and failed.provider_message_id == ""
    assert "message.failed" in _events(message)


@pytest.mark.parametrize(
    "error",
    [smtplib.SMTPDataError(451, b"try later"), smtplib.SMTPServerDisconnected("gone"), ConnectionRefusedError()],
    ids=["4xx data", "disconnected", "connection refused"],
)
def test_a_transient_error_leaves_the_message_queued_for_the_retry(settings: Any, owner: Any, error: Exception) -> None:
    settings.EMAIL_BACKEND = BACKEND
    RefusingBackend.error = error
    message = _queued(owner)

    with pytest.raises(TransientSendError):
        message_dispatch(message_id=message.id)

    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (Message.Status.QUEUED, "")
    assert "message.failed" not in _events(message)


def test_giving_up_fails_a_queued_message_but_never_one_already_sent(owner: Any, teammate: Any) -> None:
    queued, sent = _queued(owner), _queued(owner, to=teammate.address)
    message_dispatch(message_id=sent.id)

    given_up = message_fail(message_id=queued.id, detail="retries exhausted")
    late = message_fail(message_id=sent.id, detail="retries exhausted")

    assert given_up is not None and (given_up.status, given_up.status_detail) == (
        Message.Status.FAILED,
        "retries exhausted",
    )
    assert late is not None and late.status == Message.Status.SENT


def test_tracking_moves_the_status_forward_only(owner: Any, teammate: Any) -> None:
    message = message_dispatch(message_id=_queued(owner, to=teammate.address).id)
    assert message is not None and message.provider_message_id

    bounced = message_track(provider_message_id=message.provider_message_id, event_type="bounced", detail="550")
    late = message_track(provider_message_id=message.provider_message_id, event_type="delivered")

    assert bounced is not None and late is not None
    assert (bounced.status, late.status) == (Message.Status.BOUNCED, Message.Status.BOUNCED)
    assert _events(message).count("message.bounced") == 1 and "message.delivered" not in _events(message)


def test_tracking_ignores_unknown_events_and_unknown_messages(owner: Any) -> None:
    assert message_track(provider_message_id="<nobody@example.com>", event_type="delivered") is None
    assert message_track(provider_message_id="", event_type="delivered") is None
    assert message_track(provider_message_id="<x@example.com>", event_type="opened") is None


def test_stale_queued_messages_are_found_for_the_sweep(owner: Any, teammate: Any) -> None:
    old, fresh, sent = _queued(owner), _queued(owner), _queued(owner, to=teammate.address)
    message_dispatch(message_id=sent.id)
    long_ago = old.received_at - dt.timedelta(hours=1)
    Message.objects.filter(pk__in=[old.pk, sent.pk]).update(received_at=long_ago)

    assert messages_queued_stale(older_than=dt.timedelta(minutes=10)) == [old.id]
    assert set(messages_queued_stale(older_than=dt.timedelta(0))) == {old.id, fresh.id}

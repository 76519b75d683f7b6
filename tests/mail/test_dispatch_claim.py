"""The send claim: a worker that cannot read the stored MIME releases its claim, so the
retry sends the message instead of leaving it claimed (and unsent) for ever; a claim left by
a worker that died during the handoff becomes a failure the agent and staff see, never a
second send."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail as outbox
from django.utils import timezone

from mail import dispatch
from mail.dispatch import message_dispatch
from mail.models import Message
from mail.sending import Outgoing, message_send
from mail.tasks import sweep_queued_messages
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def test_a_storage_error_before_the_handoff_releases_the_claim(
    owner: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))
    real_read = dispatch.raw_read

    def unreachable(key: str, **kwargs: Any) -> bytes:
        raise ConnectionResetError("storage unreachable")

    monkeypatch.setattr(dispatch, "raw_read", unreachable)
    with pytest.raises(OSError):
        message_dispatch(message_id=message.id)

    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (Message.Status.QUEUED, "")
    monkeypatch.setattr(dispatch, "raw_read", real_read)
    assert message_dispatch(message_id=message.id).status == Message.Status.SENT
    assert len(outbox.outbox) == 1


def test_a_claim_left_by_a_dead_worker_becomes_a_visible_failure_never_a_resend(owner: Any, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))
    # What a worker killed between the handoff and the provider's answer leaves behind.
    Message.objects.filter(pk=message.pk).update(
        provider_message_id="handoff:snd_dead", updated_at=timezone.now() - dt.timedelta(minutes=20)
    )
    fresh = message_send(agent=owner.agent, outgoing=Outgoing(to=["carol@example.com"], subject="s", body="b"))
    Message.objects.filter(pk=fresh.pk).update(provider_message_id="handoff:snd_busy")

    assert sweep_queued_messages() >= 0

    message.refresh_from_db()
    fresh.refresh_from_db()
    assert message.status == Message.Status.FAILED and message.status_detail.startswith("in doubt")
    assert fresh.status == Message.Status.QUEUED  # a handoff in progress is left alone
    assert outbox.outbox == []
    event = Event.objects.get(type="message.failed")
    assert event.payload["MessageID"] == message.id and event.payload["StatusDetail"].startswith("in doubt")


def test_a_claim_left_by_a_worker_that_died_before_the_handoff_is_sent_after_all(
    owner: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))
    # Killed after its claim, before it touched the provider, 20 minutes ago.
    long_ago = timezone.now() - dt.timedelta(minutes=20)
    Message.objects.filter(pk=message.pk).update(
        provider_message_id="claim:snd_dead", updated_at=long_ago, received_at=long_ago
    )

    with django_capture_on_commit_callbacks(execute=True):
        sweep_queued_messages()

    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(outbox.outbox) == 1

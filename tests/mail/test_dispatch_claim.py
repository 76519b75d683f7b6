"""The send claim: a worker that cannot read the stored MIME releases its claim, so the
retry sends the message instead of leaving it claimed (and unsent) for ever."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail as outbox

from mail import dispatch
from mail.dispatch import message_dispatch
from mail.models import Message
from mail.sending import Outgoing, message_send

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

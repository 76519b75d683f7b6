"""Mail to postmaster (RFC 5321 4.5.1), through a real SMTP conversation with the real
listener: accepted in any case, with or without the domain, and held for staff in the
moderation queue, out of every tenant's reach."""

from __future__ import annotations

import smtplib
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from directory.models import ApiToken
from mail.models import Message
from tests.mime import build_mail


def _postmaster_mail(subject: str, timeout: float = 5.0) -> Message:
    deadline = time.monotonic() + timeout
    while (
        message := Message.objects.filter(subject=subject, agent__agent_id="postmaster").first()
    ) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert message is not None, "the message was not indexed"
    return message


@pytest.mark.parametrize(
    "rcpt",
    [
        "postmaster@agents.localhost",
        "PostMaster@Agents.LocalHost",
        "postmaster+abuse@agents.localhost",
        "postmaster",
        "POSTMASTER",
    ],
)
def test_it_accepts_mail_to_postmaster_and_holds_it_for_staff(smtp_listener: Any, owner: Any, rcpt: str) -> None:
    with smtplib.SMTP(*smtp_listener) as client:
        client.ehlo("mx.example.com")
        client.mail("alice@example.com")
        assert client.rcpt(rcpt)[0] == 250
        code, _ = client.data(build_mail(to=rcpt, subject=f"Abuse report ({rcpt})"))
    assert code == 250

    message = _postmaster_mail(f"Abuse report ({rcpt})")
    assert message.agent.agent_id == "postmaster"
    assert message.disposition == Message.Disposition.HELD
    assert Message.objects.in_moderation_queue().filter(pk=message.pk).exists()


def test_postmaster_mail_is_in_the_admin_queue_and_no_tenant_can_read_it(
    smtp_listener: Any, owner: Any, operator: Any
) -> None:
    with smtplib.SMTP(*smtp_listener) as client:
        client.sendmail(
            "alice@example.com",
            ["postmaster@agents.localhost", owner.address],
            build_mail(to=["postmaster@agents.localhost", owner.address], subject="Your server is misconfigured"),
        )
    message = _postmaster_mail("Your server is misconfigured")
    postmaster = message.agent

    # Owned by the system account: no operator or agent token of any tenant belongs to it.
    assert postmaster.account != owner.agent.account
    assert not ApiToken.objects.filter(account=postmaster.account).exists()
    assert operator.get("/v1/agents/postmaster").status_code == 404
    assert "postmaster" not in operator.get("/v1/agents").content.decode()
    assert owner.client.get(f"/v1/messages/{message.pk}").status_code == 404
    # The owner's copy of the same delivery (indexed in the same batch) is in its inbox.
    assert Message.objects.get(agent=owner.agent).disposition == Message.Disposition.INBOX

    staff = Client()
    staff.force_login(User.objects.create_superuser("root", "root@example.com", "root-pass-123"))
    queue = staff.get("/admin/mail/moderationitem/").content.decode()
    assert "Your server is misconfigured" in queue

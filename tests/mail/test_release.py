"""Held mail enters the inbox through one service, whether staff release it in the admin
or its sender is verified (here: trusted through the senders API)."""

from __future__ import annotations

from typing import Any

from mail.models import Message
from tests.mime import build_mail
from webhooks.models import Event

ALIGNED = {"spf": "pass", "spf_domain": "example.com", "dkim": "pass", "dkim_domains": ["example.com"]}


def _held(owner: Any, deliver: Any, subject: str) -> Message:
    raw = build_mail(to=owner.address, sender="alice@example.com", subject=subject)
    deliver(raw, to=owner.address, authentication=ALIGNED)
    message = Message.objects.get(agent=owner.agent, subject=subject)
    assert message.disposition == Message.Disposition.HELD
    assert message.quarantine_reason
    return message


def test_it_gives_the_same_row_whether_staff_release_held_mail_or_its_sender_is_trusted(
    owner: Any, deliver: Any, admin_client: Any, post: Any
) -> None:
    owner.agent.policy = "verified_only"
    owner.agent.save(update_fields=["policy"])
    by_staff = _held(owner, deliver, "released by staff")
    by_trust = _held(owner, deliver, "released by trust")
    before = {m.pk: m.updated_at for m in (by_staff, by_trust)}

    admin_client.post("/admin/mail/moderationitem/", {"action": "release", "_selected_action": [by_staff.pk]})
    post(owner, "/v1/directory/senders", {"address_or_domain": "alice@example.com", "action": "trust"})

    rows = [Message.objects.get(pk=m.pk) for m in (by_staff, by_trust)]
    assert [(m.disposition, m.quarantine_reason) for m in rows] == [(Message.Disposition.INBOX, "")] * 2
    assert all(m.updated_at > before[m.pk] for m in rows)
    # Staff release without verifying anyone; the trusted sender's mail says it is verified.
    assert [m.sender_verified for m in rows] == [False, True]
    received = Event.objects.filter(agent=owner.agent, type="message.received")
    assert sorted(e.payload["MessageID"] for e in received) == sorted(m.id for m in rows)

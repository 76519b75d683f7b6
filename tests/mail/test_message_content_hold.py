"""An agent's ``hold_on`` policy: inbound mail with one of the named Safety flags goes to
the moderation queue (held, with the reason for staff) instead of the inbox, decided at
ingest before any event; flags never drop mail, and staff release it as any held mail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from directory.models import Agent
from mail.models import Message
from webhooks.models import Event

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).parent / "testdata" / "content"
ALIGNED = {"spf": "pass", "spf_domain": "vendor.example", "dkim": "pass", "dkim_domains": ["vendor.example"]}


def _deliver_file(deliver: Any, persona: Any, name: str, **kwargs: Any) -> Message:
    accepted = deliver((CORPUS / f"{name}.eml").read_bytes(), to=persona.address, **kwargs)
    return Message.objects.get(delivery=accepted.delivery, agent=persona.agent)


def _hold_on(persona: Any, *flags: str) -> None:
    Agent.objects.filter(pk=persona.agent.pk).update(hold_on=list(flags))
    persona.agent.refresh_from_db()


def _received(persona: Any) -> list[str]:
    return [e.payload["MessageID"] for e in Event.objects.filter(agent=persona.agent, type="message.received")]


def test_mail_with_a_flag_the_agent_holds_on_is_held_with_its_reason_and_no_event(owner: Any, deliver: Any) -> None:
    _hold_on(owner, "instructions_to_model")
    message = _deliver_file(deliver, owner, "prompt-injection-white-text")

    assert message.disposition == Message.Disposition.HELD
    assert message.quarantine_reason.startswith("content flags: instructions_to_model")
    assert message.delivery.outcome == {owner.agent.agent_id: "held"}
    assert _received(owner) == []
    assert owner.client.get("/v1/inbox").json()["items"] == []


def test_flagged_mail_reaches_the_inbox_of_an_agent_without_hold_on(owner: Any, deliver: Any) -> None:
    message = _deliver_file(deliver, owner, "prompt-injection-white-text")
    assert message.disposition == Message.Disposition.INBOX
    assert _received(owner) == [message.id]


def test_a_flag_the_agent_does_not_hold_on_only_informs(owner: Any, deliver: Any) -> None:
    _hold_on(owner, "instructions_to_model", "lookalike_sender")
    message = _deliver_file(deliver, owner, "newsletter-hidden-preheader")  # hidden_text only
    assert message.disposition == Message.Disposition.INBOX
    assert owner.client.get(f"/v1/messages/{message.id}").json()["Safety"]["flags"] == ["hidden_text"]


def test_staff_release_held_flagged_mail_into_the_inbox_with_its_event(
    owner: Any, deliver: Any, admin_client: Any
) -> None:
    _hold_on(owner, "hidden_text")
    message = _deliver_file(deliver, owner, "prompt-injection-white-text")
    page = admin_client.get("/admin/mail/moderationitem/").content.decode()
    assert "content flags: hidden_text" in page

    admin_client.post("/admin/mail/moderationitem/", {"action": "release", "_selected_action": [message.pk]})

    message.refresh_from_db()
    assert (message.disposition, message.quarantine_reason) == (Message.Disposition.INBOX, "")
    assert _received(owner) == [message.id]


def test_verifying_the_sender_does_not_release_mail_held_for_its_content(owner: Any, deliver: Any, post: Any) -> None:
    _hold_on(owner, "instructions_to_model")
    Agent.objects.filter(pk=owner.agent.pk).update(policy=Agent.Policy.VERIFIED_ONLY)
    owner.agent.refresh_from_db()
    # Held for its sender first (the trust check runs before the content is looked at).
    message = _deliver_file(deliver, owner, "prompt-injection-white-text", authentication=ALIGNED)
    assert message.disposition == Message.Disposition.HELD
    assert not message.quarantine_reason.startswith("content flags")

    post(owner, "/v1/directory/senders", {"address_or_domain": message.sender, "action": "trust"})

    message.refresh_from_db()
    assert message.disposition == Message.Disposition.HELD
    assert message.quarantine_reason.startswith("content flags: instructions_to_model")
    assert _received(owner) == []

"""SenderVerified through the real pipeline: each row of the guide's trust table and
failure table, and the forgeries that must never become verified."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from assmbl.domain import Invalid
from directory.models import Agent, Sender, SenderRule
from directory.services import agent_policy_set
from mail.models import InboundDelivery, Message
from mail.serializers import message_item
from mail.trust import challenge_complete, challenge_request, sender_blocked, sender_entry_create
from tests.mime import build_mail

ALIGNED = {"spf": "pass", "spf_domain": "example.com", "dkim": "pass", "dkim_domains": ["example.com"]}
SES_PASS = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS"}
SES_FAIL = {"spf": "FAIL", "dkim": "FAIL", "dmarc": "FAIL", "spam": "PASS", "virus": "PASS"}


@pytest.fixture(autouse=True)
def local_backend(settings: Any) -> None:
    """Challenges go to pytest-django's outbox, which these tests read, not through the local
    backend that tests/mail/conftest.py puts in front of agent mail."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _item(
    owner: Any, deliver: Any, auth: dict[str, Any], sender: str = "alice@example.com", **kw: Any
) -> dict[str, Any]:
    raw = build_mail(to=owner.address, sender=sender, **kw)
    if "spam" in auth:  # SES-shaped verdicts arrive on the SES path
        accepted = deliver(raw, to=owner.address, authentication=auth, source="ses", external_id=f"ses:{uuid4()}")
    else:
        accepted = deliver(raw, to=owner.address, authentication=auth)
    return message_item(Message.objects.get(delivery=accepted.delivery, agent=owner.agent))


def _trust(owner: Any, address: str = "alice@example.com") -> None:
    sender_entry_create(agent=owner.agent, address_or_domain=address, action="trust")


def test_it_verifies_a_trusted_sender_whose_from_is_authenticated(owner: Any, deliver: Any) -> None:
    _trust(owner)

    item = _item(owner, deliver, ALIGNED)

    assert item["SenderVerified"] is True
    assert item["Authentication"] == {"spf": "pass", "dkim": "pass", "dmarc": "none", "aligned": True}


def test_it_leaves_an_unverified_external_sender_false(owner: Any, deliver: Any) -> None:
    item = _item(owner, deliver, ALIGNED)

    assert item["SenderVerified"] is False and item["Disposition"] == "inbox"


def test_it_is_always_false_when_sender_verification_is_disabled(owner: Any, deliver: Any, settings: Any) -> None:
    settings.SENDER_VERIFICATION_ENABLED = False
    _trust(owner)

    assert _item(owner, deliver, ALIGNED)["SenderVerified"] is False
    assert _item(owner, deliver, {"internal": True}, sender="teammate@agents.localhost")["SenderVerified"] is False


def test_it_is_true_once_the_sender_completed_the_challenge(owner: Any, deliver: Any, mailoutbox: Any) -> None:
    agent_policy_set(agent=owner.agent, policy="challenge")
    assert _item(owner, deliver, ALIGNED)["SenderVerified"] is False
    token = mailoutbox[0].subject.rsplit("challenge:", 1)[1].rstrip("]")

    challenge_complete(token=token)

    assert _item(owner, deliver, ALIGNED)["SenderVerified"] is True


def test_it_never_verifies_a_forged_from_of_a_trusted_sender(owner: Any, deliver: Any) -> None:
    _trust(owner, "ceo@example.com")
    forged_local = {"spf": "fail", "spf_domain": "example.com", "dkim": "fail", "dkim_domains": []}
    passing_for_attacker = {
        "spf": "pass",
        "spf_domain": "attacker.test",
        "dkim": "pass",
        "dkim_domains": ["attacker.test"],
    }

    for auth in (forged_local, passing_for_attacker, SES_FAIL, {}, {"aligned": True}):
        item = _item(owner, deliver, auth, sender="Ceo <ceo@example.com>")
        assert item["SenderVerified"] is False, auth


def test_it_verifies_a_trusted_sender_on_the_ses_path_only_with_a_dmarc_pass(owner: Any, deliver: Any) -> None:
    _trust(owner)

    passing = _item(owner, deliver, SES_PASS, subject="a")
    gray = _item(owner, deliver, {**SES_PASS, "dmarc": "GRAY"}, subject="b")

    assert passing["SenderVerified"] is True and passing["Authentication"]["dmarc"] == "pass"
    assert gray["SenderVerified"] is False


def test_it_verifies_agent_mail_within_the_account_by_construction(
    owner: Any, teammate: Any, stranger: Any, deliver: Any
) -> None:
    assert _item(owner, deliver, {"internal": True}, sender=teammate.address)["SenderVerified"] is True
    # Authenticated, but another account's agent is a sender like any other until trusted.
    item = _item(owner, deliver, {"internal": True}, sender=stranger.address)
    assert item["SenderVerified"] is False and item["Authentication"]["aligned"] is True


def test_it_stores_blocked_mail_hidden_from_the_inbox_but_kept(owner: Any, deliver: Any) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="example.com", action="block")

    item = _item(owner, deliver, SES_PASS)

    message = Message.objects.get(pk=item["MessageID"])
    assert message.disposition == Message.Disposition.BLOCKED
    assert not Message.objects.for_agent(owner.agent).in_inbox().exists()
    assert message.delivery.outcome == {owner.agent.agent_id: "blocked"}


def test_a_sender_staff_marked_blocked_is_blocked_without_a_rule(owner: Any, deliver: Any) -> None:
    # The admin's Sender page edits the status directly; no SenderRule exists.
    Sender.objects.create(agent=owner.agent, address="alice@example.com", status=Sender.Status.BLOCKED)

    assert _item(owner, deliver, ALIGNED)["Disposition"] == "blocked"
    assert (
        sender_blocked(agent=owner.agent, sender="Alice@Example.com")
        == "<alice@example.com> is blocked by this recipient"
    )
    assert _item(owner, deliver, ALIGNED, sender="bob@example.com")["Disposition"] == "inbox"


def test_it_lets_the_narrowest_rule_win(owner: Any, deliver: Any) -> None:
    sender_entry_create(agent=None, address_or_domain="example.com", action="block")
    sender_entry_create(agent=owner.agent, address_or_domain="alice@example.com", action="allow")

    assert _item(owner, deliver, ALIGNED)["Disposition"] == "inbox"
    assert _item(owner, deliver, ALIGNED, sender="bob@example.com")["Disposition"] == "blocked"
    assert _item(owner, deliver, ALIGNED, sender="bob@mail.example.com")["Disposition"] == "blocked"


@pytest.mark.parametrize("policy", ["verified_only", "allowlist"])
def test_it_holds_mail_from_unverified_senders_for_strict_policies(owner: Any, deliver: Any, policy: str) -> None:
    agent_policy_set(agent=owner.agent, policy=policy)

    item = _item(owner, deliver, ALIGNED)

    assert item["Disposition"] == "held" and item["SenderVerified"] is False


def test_it_admits_allowlisted_senders_only_when_authenticated(owner: Any, deliver: Any) -> None:
    agent_policy_set(agent=owner.agent, policy="allowlist")
    sender_entry_create(agent=owner.agent, address_or_domain="example.com", action="allow")

    assert _item(owner, deliver, ALIGNED)["Disposition"] == "inbox"
    assert _item(owner, deliver, SES_FAIL)["Disposition"] == "held"


def test_it_releases_held_mail_when_the_sender_is_verified(owner: Any, deliver: Any) -> None:
    agent_policy_set(agent=owner.agent, policy="verified_only")
    held = _item(owner, deliver, ALIGNED)
    forged = _item(owner, deliver, SES_FAIL)
    challenge = challenge_request(agent=owner.agent, address="alice@example.com", authentication=ALIGNED)
    assert challenge is not None
    from webhooks.models import Event

    _trust(owner)

    released = Message.objects.get(pk=held["MessageID"])
    assert released.disposition == "inbox" and released.sender_verified is True
    assert Message.objects.get(pk=forged["MessageID"]).disposition == "held"
    assert Event.objects.filter(
        agent=owner.agent, type="message.received", payload__MessageID=held["MessageID"]
    ).exists()
    assert Event.objects.filter(agent=owner.agent, type="sender.verified").count() == 1


def test_it_counts_messages_per_sender(owner: Any, deliver: Any) -> None:
    _item(owner, deliver, ALIGNED, subject="1")
    _item(owner, deliver, {}, subject="2")

    sender = Sender.objects.get(agent=owner.agent, address="alice@example.com")
    assert sender.message_count == 2 and sender.last_seen_at is not None


def test_it_rejects_an_unknown_policy(owner: Any) -> None:
    with pytest.raises(Invalid, match="policy must be one of"):
        agent_policy_set(agent=owner.agent, policy="everyone")
    assert Agent.objects.get(pk=owner.agent.pk).policy == "open"
    assert not SenderRule.objects.exists()
    assert InboundDelivery.objects.count() == 0

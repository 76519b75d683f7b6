"""The sender challenge: one mail to authenticated unknown senders of a challenge agent,
a confirmation page that changes nothing on GET, and tokens that work once, for one agent."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from directory.models import Challenge, Sender
from directory.services import agent_policy_set
from mail.models import Message
from mail.trust import challenge_request, token_hash
from tests.mime import build_mail
from webhooks.models import Event

ALIGNED = {"spf": "pass", "spf_domain": "example.com", "dkim": "pass", "dkim_domains": ["example.com"]}
FORGED = {"spf": "fail", "spf_domain": "example.com", "dkim": "fail", "dkim_domains": []}


@pytest.fixture(autouse=True)
def local_backend(settings: Any) -> None:
    """Challenges go to pytest-django's outbox, which these tests read, not through the local
    backend that tests/mail/conftest.py puts in front of agent mail."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _challenged(owner: Any, deliver: Any, mailoutbox: Any, auth: dict[str, Any] = ALIGNED) -> str:
    agent_policy_set(agent=owner.agent, policy="challenge")
    deliver(build_mail(to=owner.address, sender="alice@example.com"), to=owner.address, authentication=auth)
    assert len(mailoutbox) == 1
    return re.search(r"/challenge/([A-Za-z0-9_-]+)", mailoutbox[0].body).group(1)


def test_it_sends_one_challenge_from_the_agent_with_a_link_and_a_reply_token(
    owner: Any, deliver: Any, mailoutbox: Any, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = "https://mail.example.net"

    token = _challenged(owner, deliver, mailoutbox)

    mail = mailoutbox[0]
    assert mail.from_email == owner.address and mail.to == ["alice@example.com"]
    assert f"https://mail.example.net/challenge/{token}" in mail.body
    assert f"challenge: {token}" in mail.body and f"[challenge:{token}]" in mail.subject
    assert mail.extra_headers["Auto-Submitted"] == "auto-replied"
    challenge = Challenge.objects.get()
    assert challenge.token_hash == token_hash(token) and token not in challenge.token_hash


def test_it_never_challenges_an_unauthenticated_sender(owner: Any, deliver: Any, mailoutbox: Any) -> None:
    agent_policy_set(agent=owner.agent, policy="challenge")

    deliver(build_mail(to=owner.address, sender="alice@example.com"), to=owner.address, authentication=FORGED)

    assert mailoutbox == [] and not Challenge.objects.exists()


def test_it_does_not_challenge_auto_replies_or_open_agents(owner: Any, deliver: Any, mailoutbox: Any) -> None:
    deliver(build_mail(to=owner.address, sender="alice@example.com"), to=owner.address, authentication=ALIGNED)
    agent_policy_set(agent=owner.agent, policy="challenge")
    auto = build_mail(to=owner.address, sender="bob@example.com", headers={"Auto-Submitted": "auto-replied"})
    deliver(auto, to=owner.address, authentication=ALIGNED)

    assert mailoutbox == []


def test_it_sends_at_most_one_challenge_per_window_for_10000_mails(
    owner: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    agent_policy_set(agent=owner.agent, policy="challenge")
    with django_capture_on_commit_callbacks(execute=True):
        sent = [
            challenge_request(agent=owner.agent, address="alice@example.com", authentication=ALIGNED)
            for _ in range(10_000)
        ]

    assert sum(1 for c in sent if c is not None) == 1
    assert len(mailoutbox) == 1 and Challenge.objects.count() == 1
    cache.clear()  # a flushed cache: the database claim still allows no second mail
    assert challenge_request(agent=owner.agent, address="alice@example.com", authentication=ALIGNED) is None

    # After the window (its database claim and its cache entry both expired), one more.
    Sender.objects.update(challenged_at=timezone.now() - timedelta(seconds=settings.CHALLENGE_WINDOW_SECONDS + 1))
    cache.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert challenge_request(agent=owner.agent, address="alice@example.com", authentication=ALIGNED) is not None
        assert challenge_request(agent=owner.agent, address="alice@example.com", authentication=ALIGNED) is None
    assert len(mailoutbox) == 2


def test_it_shows_a_confirm_button_and_changes_nothing_on_get(
    owner: Any, deliver: Any, mailoutbox: Any, client: Any
) -> None:
    token = _challenged(owner, deliver, mailoutbox)

    response = client.get(f"/challenge/{token}")

    assert response.status_code == 200
    assert b'<form method="post">' in response.content and b"alice@example.com" in response.content
    assert Sender.objects.get(address="alice@example.com").status == "challenged"
    assert Challenge.objects.get().used_at is None


def test_it_verifies_the_sender_on_post_and_emits_sender_verified(
    owner: Any, deliver: Any, mailoutbox: Any, client: Any
) -> None:
    token = _challenged(owner, deliver, mailoutbox)

    response = client.post(f"/challenge/{token}")

    assert response.status_code == 200 and b"Address confirmed" in response.content
    sender = Sender.objects.get(agent=owner.agent, address="alice@example.com")
    assert sender.status == "verified" and sender.verified_at is not None
    event = Event.objects.get(agent=owner.agent, type="sender.verified")
    assert event.payload["Address"] == "alice@example.com"


def test_it_refuses_a_reused_token(owner: Any, deliver: Any, mailoutbox: Any, client: Any) -> None:
    token = _challenged(owner, deliver, mailoutbox)
    client.post(f"/challenge/{token}")

    for response in (client.get(f"/challenge/{token}"), client.post(f"/challenge/{token}")):
        assert response.status_code == 410 and b"already used" in response.content
    assert Event.objects.filter(type="sender.verified").count() == 1


def test_it_refuses_an_expired_token(owner: Any, deliver: Any, mailoutbox: Any, client: Any) -> None:
    token = _challenged(owner, deliver, mailoutbox)
    Challenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(f"/challenge/{token}")

    assert response.status_code == 410 and b"expired" in response.content
    assert Sender.objects.get(address="alice@example.com").status == "challenged"


def test_it_refuses_an_unknown_token_with_a_page(db: Any, client: Any) -> None:
    response = client.post("/challenge/not-a-real-token-at-all-xxxxxxxxxx")

    assert response.status_code == 404 and b"not valid" in response.content


def test_it_completes_a_challenge_by_an_authenticated_reply(owner: Any, deliver: Any, mailoutbox: Any) -> None:
    token = _challenged(owner, deliver, mailoutbox)
    reply = build_mail(to=owner.address, sender="alice@example.com", subject=f"Re: Confirm [challenge:{token}]")

    deliver(reply, to=owner.address, authentication=ALIGNED)

    assert Sender.objects.get(agent=owner.agent, address="alice@example.com").status == "verified"


def test_it_refuses_a_reply_token_of_another_agent_or_an_unauthenticated_reply(
    owner: Any, teammate: Any, deliver: Any, mailoutbox: Any
) -> None:
    token = _challenged(owner, deliver, mailoutbox)
    reply = build_mail(to=teammate.address, sender="alice@example.com", subject=f"Re: [challenge:{token}]")
    deliver(reply, to=teammate.address, authentication=ALIGNED)
    forged = build_mail(to=owner.address, sender="alice@example.com", subject=f"Re: [challenge:{token}]")
    deliver(forged, to=owner.address, authentication=FORGED)

    assert Sender.objects.get(agent=owner.agent, address="alice@example.com").status == "challenged"
    assert not Sender.objects.filter(agent=teammate.agent, status="verified").exists()
    assert Challenge.objects.get().used_at is None


def test_it_releases_held_mail_when_the_challenge_is_completed(
    owner: Any, deliver: Any, mailoutbox: Any, client: Any
) -> None:
    token = _challenged(owner, deliver, mailoutbox)
    agent_policy_set(agent=owner.agent, policy="verified_only")
    deliver(
        build_mail(to=owner.address, sender="alice@example.com", subject="held"),
        to=owner.address,
        authentication=ALIGNED,
    )
    assert Message.objects.get(subject="held").disposition == "held"

    client.post(f"/challenge/{token}")

    message = Message.objects.get(subject="held")
    assert message.disposition == "inbox" and message.sender_verified is True


def test_it_refuses_a_token_presented_for_another_agent(
    owner: Any, teammate: Any, deliver: Any, mailoutbox: Any
) -> None:
    import pytest

    from mail.trust import ChallengeRefused, challenge_complete

    token = _challenged(owner, deliver, mailoutbox)

    with pytest.raises(ChallengeRefused) as refused:
        challenge_complete(token=token, agent=teammate.agent)

    assert refused.value.status == 404
    assert Challenge.objects.get().used_at is None
    assert challenge_complete(token=token, agent=owner.agent).status == "verified"


def test_it_completes_a_challenge_whose_token_ends_or_starts_with_a_dash(
    owner: Any, deliver: Any, mailoutbox: Any, monkeypatch: Any
) -> None:
    # One token in 32 ends in "-" and one in 32 starts with it: both must work by reply.
    for n, token in enumerate(["A" * 31 + "-", "-" + "b" * 30 + "_"]):
        address = f"alice{n}@example.com"
        monkeypatch.setattr("mail.trust.secrets.token_urlsafe", lambda nbytes, token=token: token)
        agent_policy_set(agent=owner.agent, policy="challenge")
        deliver(build_mail(to=owner.address, sender=address), to=owner.address, authentication=ALIGNED)
        assert f"[challenge:{token}]" in mailoutbox[-1].subject
        reply = build_mail(to=owner.address, sender=address, subject=f"Re: Confirm [challenge:{token}]")

        deliver(reply, to=owner.address, authentication=ALIGNED)

        assert Sender.objects.get(agent=owner.agent, address=address).status == "verified"


def test_a_longer_run_of_token_characters_is_not_a_token(owner: Any, deliver: Any, mailoutbox: Any) -> None:
    token = _challenged(owner, deliver, mailoutbox)
    reply = build_mail(to=owner.address, sender="alice@example.com", subject=f"Re: [challenge:{token}x]")

    deliver(reply, to=owner.address, authentication=ALIGNED)

    assert Challenge.objects.get().used_at is None

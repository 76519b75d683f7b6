"""The agent's outbound policy applies alike to every way out: send, reply and forward
(drafts and SMTP submission call the same service). One table of ways out × rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from directory.models import OutboundPolicy
from mail.models import Message, SendCounter, Suppression
from tests.mime import build_mail
from webhooks.models import Event

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"


@pytest.fixture
def original(owner: Any, deliver: Any) -> Message:
    """A mail from Alice to the owner: the reply goes back to Alice."""
    accepted = deliver(build_mail(to=owner.address, sender=f"Alice <{ALICE}>", subject="Quote"), to=owner.address)
    return Message.objects.get(delivery=accepted.delivery)


def _send(original: Message) -> tuple[str, dict[str, Any]]:
    return "/v1/send", {"to": ALICE, "subject": "Quote", "body": "Here it is."}


def _reply(original: Message) -> tuple[str, dict[str, Any]]:
    return f"/v1/messages/{original.id}/reply", {"body": "Here it is."}


def _forward(original: Message) -> tuple[str, dict[str, Any]]:
    return f"/v1/messages/{original.id}/forward", {"to": ALICE, "body": "FYI"}


WAYS_OUT: dict[str, Callable[[Message], tuple[str, dict[str, Any]]]] = {
    "send": _send,
    "reply": _reply,
    "forward": _forward,
}


def _policy(owner: Any, **fields: Any) -> None:
    OutboundPolicy.objects.update_or_create(agent=owner.agent, defaults=fields)


@pytest.fixture(params=sorted(WAYS_OUT))
def way_out(request: Any, original: Message) -> tuple[str, dict[str, Any]]:
    return WAYS_OUT[request.param](original)


def test_it_refuses_a_recipient_outside_the_allowed_list(owner: Any, post: Any, way_out: Any) -> None:
    _policy(owner, allowed_recipients=["bob@example.com", "@partner.example"])
    url, body = way_out

    response = post(owner, url, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "recipient_not_allowed"
    assert response.json()["error"]["details"] == {"address": ALICE}
    assert not Message.objects.outbound().exists()


def test_it_sends_to_an_allowed_address_or_domain(owner: Any, post: Any, way_out: Any) -> None:
    _policy(owner, allowed_recipients=["@example.com"])
    url, body = way_out

    response = post(owner, url, body)

    assert response.status_code == 202, response.content
    assert Message.objects.outbound().get().status == Message.Status.SENT


def test_it_refuses_a_suppressed_recipient(owner: Any, post: Any, way_out: Any) -> None:
    Suppression.objects.create(account=owner.agent.account, address=ALICE, reason=Suppression.Reason.BOUNCE)
    url, body = way_out

    response = post(owner, url, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "recipient_suppressed"
    assert response.json()["error"]["details"] == {"address": ALICE, "reason": "bounce"}


def test_a_suppression_of_another_account_does_not_apply(owner: Any, stranger: Any, post: Any, way_out: Any) -> None:
    Suppression.objects.create(account=stranger.agent.account, address=ALICE, reason=Suppression.Reason.COMPLAINT)
    url, body = way_out

    assert post(owner, url, body).status_code == 202


def test_it_refuses_the_send_over_the_hourly_quota_with_retry_after(owner: Any, post: Any, way_out: Any) -> None:
    _policy(owner, max_per_hour=2)
    url, body = way_out
    assert post(owner, url, body).status_code == 202
    assert post(owner, url, body).status_code == 202

    response = post(owner, url, body)

    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert response.json()["error"]["details"] == {"window": "hour", "limit": 2}
    assert 1 <= int(response["Retry-After"]) <= 3601
    assert Message.objects.outbound().count() == 2


def test_it_holds_mail_for_approval(owner: Any, post: Any, way_out: Any) -> None:
    _policy(owner, approval="always")
    url, body = way_out

    response = post(owner, url, body)

    assert response.status_code == 202, response.content
    assert response.json()["Status"] == "pending_approval"
    message = Message.objects.outbound().get()
    assert message.status == Message.Status.PENDING_APPROVAL
    assert Event.objects.filter(type="message.pending_approval", agent=owner.agent).count() == 1
    assert not Event.objects.filter(type="message.sent").exists()


def test_it_schedules_mail_at_send_at(owner: Any, post: Any, way_out: Any) -> None:
    url, body = way_out
    send_at = timezone.now() + dt.timedelta(hours=2)

    response = post(owner, url, {**body, "send_at": send_at.isoformat()})

    assert response.status_code == 202, response.content
    assert response.json()["Status"] == "scheduled"
    message = Message.objects.outbound().get()
    assert message.send_at == send_at
    assert Event.objects.filter(type="message.scheduled", agent=owner.agent).count() == 1


def test_external_approval_lets_mail_between_agents_through(owner: Any, teammate: Any, post: Any) -> None:
    _policy(owner, approval="external")

    to_agent = post(owner, "/v1/send", {"to": teammate.address, "subject": "Hi", "body": "internal"})
    to_person = post(owner, "/v1/send", {"to": [teammate.address, ALICE], "subject": "Hi", "body": "external"})

    assert to_agent.json()["Status"] == "queued"
    assert to_person.json()["Status"] == "pending_approval"


def test_the_daily_quota_counts_too(owner: Any, post: Any) -> None:
    _policy(owner, max_per_hour=5, max_per_day=1)
    body = {"to": ALICE, "subject": "Hi", "body": "b"}
    assert post(owner, "/v1/send", body).status_code == 202

    response = post(owner, "/v1/send", body)

    assert response.status_code == 429
    assert response.json()["error"]["details"] == {"window": "day", "limit": 1}
    # The refused send's hourly count was rolled back with it.
    assert SendCounter.objects.get(window="hour").count == 1


def test_a_send_refused_for_another_reason_does_not_use_the_quota(owner: Any, post: Any, settings: Any) -> None:
    _policy(owner, max_per_hour=1)
    size_limit = settings.MAX_MESSAGE_BYTES
    settings.MAX_MESSAGE_BYTES = 50
    assert post(owner, "/v1/send", {"to": ALICE, "subject": "Hi", "body": "x" * 100}).status_code == 413
    settings.MAX_MESSAGE_BYTES = size_limit

    assert post(owner, "/v1/send", {"to": ALICE, "subject": "Hi", "body": "b"}).status_code == 202


@pytest.mark.parametrize(
    "send_at",
    ["2020-01-01T00:00:00Z", "tomorrow", "2099-01-01T00:00:00", 1767225600],
)
def test_it_refuses_a_send_at_that_is_past_naive_or_not_a_date(owner: Any, post: Any, send_at: Any) -> None:
    response = post(owner, "/v1/send", {"to": ALICE, "subject": "Hi", "body": "b", "send_at": send_at})

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_send_at"


def test_it_refuses_a_send_at_more_than_30_days_ahead(owner: Any, post: Any) -> None:
    send_at = (timezone.now() + dt.timedelta(days=31)).isoformat()

    response = post(owner, "/v1/send", {"to": ALICE, "subject": "Hi", "body": "b", "send_at": send_at})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_send_at"

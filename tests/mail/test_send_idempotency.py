"""Idempotency-Key on POST /v1/send: replays, conflicts, expiry, and the purge task."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from mail.models import Message, SendRequest
from mail.tasks import purge_send_requests
from tests.mime import build_mail
from webhooks.models import Event

pytestmark = pytest.mark.django_db

BODY = {"to": "bob@example.com", "subject": "Invoice", "body": "Please pay."}


@pytest.fixture
def post(django_capture_on_commit_callbacks: Any) -> Any:
    def _post(persona: Any, url: str, body: Any, key: str | None = None) -> Any:
        extra = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            return persona.client.post(url, body, format="json", **extra)

    return _post


def test_it_replays_the_first_response_for_100_sequential_retries(owner: Any, post: Any) -> None:
    first = post(owner, "/v1/send", BODY, key="invoice-1")
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers

    for _ in range(100):
        again = post(owner, "/v1/send", dict(BODY), key="invoice-1")
        assert again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"

    assert Message.objects.outbound().count() == 1
    message = Message.objects.get()
    assert message.status == Message.Status.SENT
    assert message.idempotency_key == "invoice-1"


def test_without_a_key_every_request_sends(owner: Any, post: Any) -> None:
    post(owner, "/v1/send", BODY)
    post(owner, "/v1/send", BODY)

    assert Message.objects.outbound().count() == 2


def test_the_same_key_with_another_body_is_409_reused(owner: Any, post: Any) -> None:
    post(owner, "/v1/send", BODY, key="k")

    response = post(owner, "/v1/send", {**BODY, "body": "Changed."}, key="k")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Message.objects.count() == 1


def test_the_same_body_on_another_endpoint_is_409_reused(owner: Any, post: Any) -> None:
    post(owner, "/v1/send", BODY, key="k")
    original = Message.objects.get()

    response = post(owner, f"/v1/messages/{original.id}/forward", {"to": "bob@example.com"}, key="k")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_a_key_in_flight_is_409_in_use(owner: Any, post: Any) -> None:
    from mail.idempotency import request_hash

    SendRequest.objects.create(
        agent=owner.agent,
        key="busy",
        request_hash=request_hash(path="/v1/send", data=BODY),
        expires_at=timezone.now() + dt.timedelta(hours=24),
    )

    response = post(owner, "/v1/send", BODY, key="busy")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    assert not Message.objects.exists()


def test_keys_are_scoped_to_the_agent(owner: Any, teammate: Any, post: Any) -> None:
    post(owner, "/v1/send", BODY, key="shared")
    response = post(teammate, "/v1/send", {**BODY, "body": "other"}, key="shared")

    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response.headers
    assert Message.objects.count() == 2


def test_a_rejected_request_releases_its_key(owner: Any, post: Any) -> None:
    bad = post(owner, "/v1/send", {**BODY, "to": "nope"}, key="fix-me")
    assert bad.status_code == 400

    good = post(owner, "/v1/send", BODY, key="fix-me")

    assert good.status_code == 202
    assert "Idempotent-Replayed" not in good.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\tkey", "cl\xe9", "k\x85ey"])
def test_it_rejects_a_malformed_key(owner: Any, post: Any, key: str) -> None:
    response = post(owner, "/v1/send", BODY, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_an_expired_key_can_be_used_again(owner: Any, post: Any) -> None:
    post(owner, "/v1/send", BODY, key="old")
    SendRequest.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    response = post(owner, "/v1/send", BODY, key="old")

    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response.headers
    assert Message.objects.count() == 2


def test_the_purge_task_forgets_expired_keys_only(owner: Any, post: Any) -> None:
    post(owner, "/v1/send", BODY, key="old")
    post(owner, "/v1/send", BODY, key="new")
    SendRequest.objects.filter(key="old").update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert purge_send_requests.delay().get() == 1
    assert list(SendRequest.objects.values_list("key", flat=True)) == ["new"]


def test_the_purge_runs_periodically(settings: Any) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "mail.tasks.purge_send_requests" in tasks


def test_a_strangers_mail_with_the_key_first_does_not_swallow_an_agents_send(
    owner: Any, teammate: Any, post: Any, deliver: Any
) -> None:
    # Outbound mail shows its key to recipients: a stranger mails the teammate with the
    # key the owner is about to use, even claiming the owner's address in From.
    spoof = build_mail(
        to=teammate.address, sender=owner.address, subject="Spoof", headers={"X-AgentMail-Idempotency-Key": "invoice-1"}
    )
    deliver(spoof, to=teammate.address)

    response = post(owner, "/v1/send", {**BODY, "to": teammate.address}, key="invoice-1")

    assert response.status_code == 202
    inbox = Message.objects.for_agent(teammate.agent).in_inbox()
    assert sorted(inbox.values_list("subject", flat=True)) == ["Invoice", "Spoof"]
    sent = inbox.get(subject="Invoice")
    assert sent.delivery.outcome == {"teammate": "indexed"}
    assert [e.payload["MessageID"] for e in Event.objects.filter(agent=teammate.agent, type="message.received")] == [
        inbox.get(subject="Spoof").id,
        sent.id,
    ]


def test_an_agents_key_received_again_after_the_send_key_expired_is_a_duplicate(
    owner: Any, teammate: Any, post: Any
) -> None:
    first = post(owner, "/v1/send", {**BODY, "to": teammate.address}, key="invoice-1")
    SendRequest.objects.all().delete()  # the 24 hours of the send key are over
    again = post(owner, "/v1/send", {**BODY, "to": teammate.address}, key="invoice-1")

    assert again.json()["MessageID"] != first.json()["MessageID"]
    received = Message.objects.for_agent(teammate.agent).inbound()
    assert received.in_inbox().count() == 1
    duplicate = received.get(disposition=Message.Disposition.DUPLICATE)
    assert duplicate.delivery.outcome == {"teammate": "duplicate"}
    assert Event.objects.filter(agent=teammate.agent, type="message.received").count() == 1

"""Delivery to a real receiver on 127.0.0.1: signing, retries on the Svix schedule under a
frozen clock, status handling, and a receiver that hangs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from standardwebhooks.webhooks import Webhook

from directory.models import Agent
from mail.models import Message
from tests.mime import build_mail
from tests.webhooks.conftest import Receiver, Reply
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from webhooks.services import RETRY_SCHEDULE, _signature, deliveries_claim, endpoint_create, endpoint_rotate_secret, event_record
from webhooks.tasks import dispatch_due_deliveries

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _endpoint(agent: Agent, url: str, **kwargs: Any) -> Endpoint:
    return endpoint_create(account=agent.account, created_by=agent, url=url, **kwargs)


def _verify(endpoint: Endpoint, request: Any) -> dict[str, Any]:
    return Webhook(endpoint.secret).verify(request.body, request.headers)  # type: ignore[no-any-return]


def _record(agent: Agent, capture: Any, **payload: Any) -> Event:
    with capture(execute=True):
        return event_record(agent=agent, type="message.received", payload={"MessageID": "msg_x", **payload})


def test_the_standard_webhooks_spec_vector_matches() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    at = datetime.fromtimestamp(1614265330, tz=UTC)
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    assert Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", at, '{"test": 2432232314}') == expected
    assert _signature(Endpoint(secret=secret), "msg_p5jXN8AQM9LWM0D4loKWxJek", at, '{"test": 2432232314}') == expected


def test_it_delivers_a_received_message_as_a_signed_event(owner: Any, receiver: Receiver, deliver: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())

    deliver(build_mail(to=owner.address, subject="Invoice 7", body="secret body text " * 100), to=owner.address)

    [request] = receiver.requests
    body = _verify(endpoint, request)
    event = Event.objects.get()
    message = Message.objects.get()
    assert request.headers["webhook-id"] == event.id
    assert body["type"] == "message.received"
    assert body["data"]["MessageID"] == message.id
    assert body["data"]["Subject"] == "Invoice 7"
    assert "raw_mime" not in body["data"] and len(body["data"]["BodyPreview"]) <= 256
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.SUCCEEDED and delivery.attempts == 1
    assert DeliveryAttempt.objects.get().status_code == 200


def test_it_retries_a_failing_receiver_with_the_same_webhook_id(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())
    receiver.script = [Reply(500), Reply(502), Reply(500, body=b"still down"), Reply(204, body=b"")]

    with time_machine.travel(T0, tick=False) as clock:
        event = _record(owner.agent, django_capture_on_commit_callbacks)
        _verify(endpoint, receiver.requests[-1])
        for delay in RETRY_SCHEDULE[:3]:
            clock.shift(delay * 1.1 + timedelta(seconds=1))
            assert dispatch_due_deliveries() == 1
            _verify(endpoint, receiver.requests[-1])

    assert [r.headers["webhook-id"] for r in receiver.requests] == [event.id] * 4
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.SUCCEEDED and delivery.attempts == 4
    log = list(delivery.attempt_log.values_list("status_code", "response_excerpt"))
    assert log == [(500, "ok"), (502, "ok"), (500, "still down"), (204, "")]


def test_it_follows_the_svix_schedule_and_gives_up_after_eight_attempts(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    _endpoint(owner.agent, receiver.url())
    receiver.script = [Reply(500)] * 8

    with time_machine.travel(T0, tick=False) as clock:
        _record(owner.agent, django_capture_on_commit_callbacks)
        for expected in RETRY_SCHEDULE:
            delivery = Delivery.objects.get()
            gap = delivery.next_attempt_at - delivery.last_attempt_at
            assert expected <= gap <= expected * 1.1
            # One second early: not due yet.
            clock.move_to(delivery.next_attempt_at - timedelta(seconds=1))
            assert dispatch_due_deliveries() == 0
            clock.move_to(delivery.next_attempt_at)
            assert dispatch_due_deliveries() == 1

    delivery = Delivery.objects.get()
    assert len(receiver.requests) == 8
    assert delivery.state == Delivery.State.FAILED and delivery.next_attempt_at is None


def test_it_disables_the_endpoint_on_410(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())
    receiver.script = [Reply(410)]

    _record(owner.agent, django_capture_on_commit_callbacks)
    _record(owner.agent, django_capture_on_commit_callbacks)

    endpoint.refresh_from_db()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    assert len(receiver.requests) == 1
    assert Delivery.objects.get().state == Delivery.State.FAILED


def test_it_honours_retry_after_on_429(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    _endpoint(owner.agent, receiver.url())
    receiver.script = [Reply(429, {"Retry-After": "120"})]

    with time_machine.travel(T0, tick=False):
        _record(owner.agent, django_capture_on_commit_callbacks)

    assert Delivery.objects.get().next_attempt_at == T0 + timedelta(seconds=120)


def test_it_treats_a_redirect_as_a_failure_and_does_not_follow_it(owner: Any, receiver: Receiver, connections: list[Any], django_capture_on_commit_callbacks: Any) -> None:
    _endpoint(owner.agent, receiver.url())
    receiver.script = [Reply(307, {"Location": "http://169.254.169.254/"})]

    _record(owner.agent, django_capture_on_commit_callbacks)

    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.PENDING and delivery.last_status == 307
    assert [a[0] for a in connections] == ["127.0.0.1"]


def test_it_disables_an_endpoint_failing_for_five_days(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=datetime.now(tz=UTC) - timedelta(days=5, minutes=1))
    receiver.script = [Reply(500)]

    _record(owner.agent, django_capture_on_commit_callbacks)

    endpoint.refresh_from_db()
    assert not endpoint.enabled and "failing since" in endpoint.disabled_reason


def test_it_clears_the_failure_clock_on_success(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=datetime.now(tz=UTC) - timedelta(days=1))

    _record(owner.agent, django_capture_on_commit_callbacks)

    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None


def test_a_hanging_receiver_does_not_block_another_endpoint(owner: Any, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.5
    hanging = _endpoint(owner.agent, receiver.url("/hang"))
    healthy = _endpoint(owner.agent, receiver.url("/ok"))
    receiver.script = [Reply(200, delay=3.0), Reply(200)]

    _record(owner.agent, django_capture_on_commit_callbacks)

    by_endpoint = {d.endpoint_id: d for d in Delivery.objects.all()}
    assert by_endpoint[healthy.pk].state == Delivery.State.SUCCEEDED
    assert by_endpoint[hanging.pk].state == Delivery.State.PENDING
    assert "Timeout" in by_endpoint[hanging.pk].last_error


def test_during_rotation_both_secrets_sign(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())
    old_secret = endpoint.secret
    endpoint_rotate_secret(endpoint=endpoint)

    _record(owner.agent, django_capture_on_commit_callbacks)

    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old_secret).verify(request.body, request.headers)
    Webhook(endpoint.secret).verify(request.body, request.headers)


def test_after_the_rotation_overlap_only_the_new_secret_signs(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _endpoint(owner.agent, receiver.url())
    endpoint_rotate_secret(endpoint=endpoint, overlap=timedelta(seconds=-1))

    _record(owner.agent, django_capture_on_commit_callbacks)

    assert receiver.requests[0].headers["webhook-signature"].count("v1,") == 1
    Webhook(endpoint.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)


def test_a_claimed_delivery_is_not_claimed_twice(owner: Any, loopback_allowed: None) -> None:
    _endpoint(owner.agent, "http://127.0.0.1:9/never")
    event_record(agent=owner.agent, type="message.received", payload={})  # no on-commit run

    assert len(deliveries_claim()) == 1
    assert deliveries_claim() == []


def test_it_only_sends_the_event_types_an_endpoint_asked_for(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    _endpoint(owner.agent, receiver.url(), event_types=["message.bounced"])

    _record(owner.agent, django_capture_on_commit_callbacks)

    assert receiver.requests == [] and not Delivery.objects.exists()


def test_an_operator_endpoint_for_all_agents_gets_every_agents_events(owner: Any, teammate: Any, stranger: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint_create(account=owner.agent.account, url=receiver.url())

    for persona in (owner, teammate, stranger):
        _record(persona.agent, django_capture_on_commit_callbacks)

    agents = sorted(json.loads(r.body)["data"]["MessageID"] and Event.objects.get(id=r.headers["webhook-id"]).agent.agent_id for r in receiver.requests)
    assert agents == ["owner", "teammate"]

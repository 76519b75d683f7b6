"""GET /v1/threads/{thread_id} and the bot-loop breaker."""

from __future__ import annotations

from typing import Any

import pytest

from mail.models import Message
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(django_capture_on_commit_callbacks: Any) -> Any:
    def _post(persona: Any, url: str, body: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return persona.client.post(url, body, format="json")

    return _post


def test_it_lists_the_agents_messages_of_a_thread_in_order(owner: Any) -> None:
    first = MessageFactory(agent=owner.agent, thread_id="thr_a")
    second = MessageFactory(agent=owner.agent, thread_id="thr_a", direction=Message.Direction.OUTBOUND)
    MessageFactory(agent=owner.agent, thread_id="thr_b")
    MessageFactory(agent=owner.agent, thread_id="thr_a", disposition=Message.Disposition.HELD)

    response = owner.client.get("/v1/threads/thr_a")

    assert response.status_code == 200
    assert response.json()["thread_id"] == "thr_a"
    assert [i["MessageID"] for i in response.json()["items"]] == [first.id, second.id]


def test_it_is_404_for_an_unknown_thread_or_another_agents(owner: Any, teammate: Any) -> None:
    MessageFactory(agent=owner.agent, thread_id="thr_a")

    assert teammate.client.get("/v1/threads/thr_a").status_code == 404
    response = owner.client.get("/v1/threads/thr_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "thread_not_found"


def test_it_rejects_unknown_parameters(owner: Any) -> None:
    MessageFactory(agent=owner.agent, thread_id="thr_a")

    assert owner.client.get("/v1/threads/thr_a?sort=desc").status_code == 400


def test_the_loop_breaker_stops_two_agents_ping_ponging(settings: Any, owner: Any, teammate: Any, post: Any) -> None:
    settings.LOOP_MAX_MESSAGES = 4
    post(owner, "/v1/send", {"to": teammate.address, "subject": "Ping", "body": "ping"})
    speakers = [teammate, owner]
    responses = []
    for turn in range(6):
        speaker = speakers[turn % 2]
        latest = Message.objects.filter(agent=speaker.agent, direction=Message.Direction.INBOUND).latest(
            "received_at", "id"
        )
        response = post(speaker, f"/v1/messages/{latest.id}/reply", {"body": f"pong {turn}"})
        responses.append(response)
        if response.status_code != 202:
            break

    # owner's mailbox: send, reply, own reply, reply = 4 agent-to-agent messages; the
    # teammate's 4th turn would be its 5th message in its thread → refused.
    assert [r.status_code for r in responses] == [202, 202, 202, 429]
    error = responses[-1].json()["error"]
    assert error["code"] == "loop_detected"
    assert int(responses[-1].headers["Retry-After"]) >= 1
    assert Message.objects.outbound().count() == 4


def test_the_loop_breaker_ignores_mail_to_people(settings: Any, owner: Any, post: Any) -> None:
    settings.LOOP_MAX_MESSAGES = 2
    original = MessageFactory(
        agent=owner.agent, storage_key="", sender="alice@example.com", from_header="alice@example.com"
    )
    for _ in range(4):
        assert post(owner, f"/v1/messages/{original.id}/reply", {"body": "again"}).status_code == 202


def test_the_loop_window_lets_the_thread_resume(settings: Any, owner: Any, teammate: Any, post: Any) -> None:
    import datetime as dt

    settings.LOOP_MAX_MESSAGES = 2
    post(owner, "/v1/send", {"to": teammate.address, "subject": "Ping", "body": "ping"})
    inbound = Message.objects.get(agent=teammate.agent)
    post(teammate, f"/v1/messages/{inbound.id}/reply", {"body": "1"})
    assert post(teammate, f"/v1/messages/{inbound.id}/reply", {"body": "2"}).status_code == 429

    Message.objects.update(received_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))

    assert post(teammate, f"/v1/messages/{inbound.id}/reply", {"body": "3"}).status_code == 202

"""PATCH /v1/messages/{id}/read and GET /v1/inbox/unread-count: guide section 8."""

from __future__ import annotations

from typing import Any

import pytest

from mail.models import MessageLabel
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code, ids, receive

pytestmark = pytest.mark.django_db


def unread_count(persona: Any, query: str = "") -> int:
    response = persona.client.get(f"/v1/inbox/unread-count{query}")
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"unread_count"}
    return int(response.json()["unread_count"])


def test_it_marks_read_and_unread(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    response = owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": True}, format="json")
    assert response.status_code == 200 and response.json()["IsRead"] is True
    assert ids(owner.client.get("/v1/inbox?is_read=false")) == []
    response = owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": False}, format="json")
    assert response.status_code == 200 and response.json()["IsRead"] is False
    assert ids(owner.client.get("/v1/inbox?is_read=false")) == [message.id]


@pytest.mark.parametrize("body", [{"is_read": "true"}, {"is_read": 1}, {"is_read": 0}, {"is_read": None}, {}])
def test_it_accepts_only_a_json_boolean(owner: Any, body: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.patch(f"/v1/messages/{message.id}/read", body, format="json")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_it_rejects_an_unknown_field_instead_of_ignoring_it(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": True, "read": True}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "unknown_field",
        "message": "Unknown field: read.",
        "details": {"unknown": ["read"], "field": "read"},
    }
    assert MessageFactory._meta.model.objects.get(pk=message.pk).is_read is False


def test_unread_count_counts_unread_and_excludes_archived(owner: Any) -> None:
    MessageFactory.create_batch(3, agent=owner.agent)
    MessageFactory(agent=owner.agent, is_read=True)
    MessageFactory(agent=owner.agent, archived=True)
    MessageFactory(agent=owner.agent, disposition="quarantined")
    assert unread_count(owner) == 3


def test_unread_count_follows_read_patches(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    assert unread_count(owner) == 1
    owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": True}, format="json")
    assert unread_count(owner) == 0


def test_unread_count_takes_the_inbox_filters(owner: Any) -> None:
    tagged = MessageFactory(agent=owner.agent, sender_verified=True)
    MessageFactory(agent=owner.agent)
    MessageLabel.objects.create(message=tagged, name="urgent")
    assert unread_count(owner, "?label=urgent") == 1
    assert unread_count(owner, "?verified_only=true") == 1
    assert unread_count(owner, "?is_read=false") == 2


@pytest.mark.parametrize("query", ["?q=x", "?cursor=abc", "?limit=5", "?verified_only=yes", "?include_archived=yes"])
def test_unread_count_rejects_q_cursor_and_bad_values(owner: Any, query: str) -> None:
    response = owner.client.get(f"/v1/inbox/unread-count{query}")
    assert response.status_code == 400


def test_unread_count_accepts_include_archived_false_and_refuses_true(owner: Any) -> None:
    MessageFactory(agent=owner.agent, archived=True)
    assert unread_count(owner, "?include_archived=false") == 0
    response = owner.client.get("/v1/inbox/unread-count?include_archived=true")
    assert response.status_code == 400 and error_code(response) == "archived_not_counted"


def test_unread_count_is_per_agent(owner: Any, teammate: Any) -> None:
    MessageFactory(agent=teammate.agent)
    assert unread_count(owner) == 0

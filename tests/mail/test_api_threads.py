"""GET /v1/threads and PATCH /v1/threads/{id}/labels | read | archive."""

from __future__ import annotations

from typing import Any

import pytest

from mail.models import Message, MessageLabel
from tests.mail.inbox_helpers import error_code, receive

pytestmark = pytest.mark.django_db


def _reply(deliver: Any, persona: Any, parent: Message, **mail: Any) -> Message:
    headers = {"In-Reply-To": parent.internet_message_id, "References": parent.internet_message_id}
    return receive(deliver, persona, subject=f"Re: {parent.subject}", headers=headers, **mail)


def _thread_ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["ThreadID"] for item in response.json()["items"]]


def test_it_lists_threads_newest_activity_first(deliver: Any, owner: Any) -> None:
    older = receive(deliver, owner, subject="Older")
    newer = receive(deliver, owner, subject="Newer")
    _reply(deliver, owner, older, body="bump")

    response = owner.client.get("/v1/threads")

    assert _thread_ids(response) == [older.thread_id, newer.thread_id]
    item = response.json()["items"][0]
    assert set(item) == {
        "ThreadID", "Subject", "Participants", "MessageCount", "UnreadCount", "Labels",
        "FirstMessageAt", "LastMessageAt", "LastMessageID", "LastMessagePreview",
    }  # fmt: skip
    assert (item["Subject"], item["MessageCount"], item["UnreadCount"]) == ("Older", 2, 2)


def test_it_pages_with_a_cursor_without_skipping_or_repeating(deliver: Any, owner: Any) -> None:
    threads = [receive(deliver, owner, subject=f"T{i}").thread_id for i in range(5)]

    seen, cursor = [], None
    while True:
        response = owner.client.get("/v1/threads", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += _thread_ids(response)
        cursor = response.json()["next_cursor"]
        if not response.json()["has_more"]:
            break

    assert seen == threads[::-1]


def test_it_filters_by_label_read_state_archive_and_search(deliver: Any, owner: Any) -> None:
    invoice = receive(deliver, owner, subject="Invoice 42")
    lunch = receive(deliver, owner, subject="Lunch")
    shelved = receive(deliver, owner, subject="Old news")
    owner.client.patch(f"/v1/messages/{invoice.id}/labels", {"add": ["billing"]}, format="json")
    owner.client.patch(f"/v1/messages/{lunch.id}/read", {"is_read": True}, format="json")
    owner.client.patch(f"/v1/messages/{shelved.id}/archive", {"archived": True}, format="json")

    assert _thread_ids(owner.client.get("/v1/threads?label=billing")) == [invoice.thread_id]
    assert _thread_ids(owner.client.get("/v1/threads?is_read=false")) == [invoice.thread_id]
    assert _thread_ids(owner.client.get("/v1/threads?is_read=true")) == [lunch.thread_id]
    assert _thread_ids(owner.client.get("/v1/threads?q=invoice")) == [invoice.thread_id]
    assert _thread_ids(owner.client.get("/v1/threads")) == [lunch.thread_id, invoice.thread_id]
    assert _thread_ids(owner.client.get("/v1/threads?include_archived=true")) == [
        shelved.thread_id,
        lunch.thread_id,
        invoice.thread_id,
    ]


def test_it_lists_only_the_callers_threads(deliver: Any, owner: Any, teammate: Any, stranger: Any) -> None:
    receive(deliver, teammate, subject="Teammate's")
    receive(deliver, stranger, subject="Stranger's")
    mine = receive(deliver, owner, subject="Mine")

    assert _thread_ids(owner.client.get("/v1/threads")) == [mine.thread_id]
    assert _thread_ids(owner.client.get("/v1/threads?q=teammate")) == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "validation_error"),
        ("cursor=nope", "invalid_cursor"),
        ("q=%20", "empty_query"),
        ("sort=asc", "unknown_parameter"),
    ],
)
def test_it_rejects_bad_parameters(owner: Any, query: str, code: str) -> None:
    response = owner.client.get(f"/v1/threads?{query}")

    assert response.status_code == 400
    assert error_code(response) == code


def test_patching_labels_changes_every_message_of_the_thread(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Order")
    second = _reply(deliver, owner, first)

    response = owner.client.patch(f"/v1/threads/{first.thread_id}/labels", {"add": ["orders"]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["Labels"] == ["orders"]
    assert set(MessageLabel.objects.values_list("message_id", "name")) == {(first.id, "orders"), (second.id, "orders")}


def test_a_label_patch_that_would_pass_20_on_one_message_changes_nothing(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Full")
    second = _reply(deliver, owner, first)
    owner.client.patch(f"/v1/messages/{second.id}/labels", {"add": [f"l{i}" for i in range(19)]}, format="json")

    response = owner.client.patch(f"/v1/threads/{first.thread_id}/labels", {"add": ["a", "b"]}, format="json")

    assert response.status_code == 400
    assert error_code(response) == "too_many_labels"
    assert response.json()["error"]["details"]["message_id"] == second.id
    assert not MessageLabel.objects.filter(message=first).exists()
    assert MessageLabel.objects.filter(message=second).count() == 19


def test_patching_read_marks_every_received_message(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Unread")
    _reply(deliver, owner, first)

    response = owner.client.patch(f"/v1/threads/{first.thread_id}/read", {"is_read": True}, format="json")

    assert response.status_code == 200
    assert response.json()["UnreadCount"] == 0
    assert not Message.objects.filter(thread_id=first.thread_id, is_read=False).exists()


def test_patching_archive_archives_every_message_and_then_conflicts(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Done")
    _reply(deliver, owner, first)
    url = f"/v1/threads/{first.thread_id}/archive"

    assert owner.client.patch(url, {"archived": True}, format="json").status_code == 200
    assert not Message.objects.filter(thread_id=first.thread_id, archived=False).exists()
    assert _thread_ids(owner.client.get("/v1/threads")) == []

    again = owner.client.patch(url, {"archived": True}, format="json")
    assert again.status_code == 409
    assert error_code(again) == "already_archived"
    assert owner.client.patch(url, {"archived": False}, format="json").status_code == 200
    assert _thread_ids(owner.client.get("/v1/threads")) == [first.thread_id]


def test_another_agents_thread_is_404_and_untouched(deliver: Any, owner: Any, stranger: Any) -> None:
    theirs = receive(deliver, stranger, subject="Private")

    for action, body in (("labels", {"add": ["x"]}), ("read", {"is_read": True}), ("archive", {"archived": True})):
        response = owner.client.patch(f"/v1/threads/{theirs.thread_id}/{action}", body, format="json")
        assert response.status_code == 404
        assert error_code(response) == "thread_not_found"

    theirs.refresh_from_db()
    assert (theirs.is_read, theirs.archived, list(theirs.labels.all())) == (False, False, [])


def test_the_patches_validate_their_bodies(deliver: Any, owner: Any) -> None:
    message = receive(deliver, owner, subject="Body")

    response = owner.client.patch(f"/v1/threads/{message.thread_id}/read", {"read": True}, format="json")

    assert response.status_code == 400
    assert error_code(response) == "unknown_field"

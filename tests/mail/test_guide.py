"""The guide (inbox-and-mail-flow.md) sections 2-4 and 6-9 and its failure table, line by
line, through the HTTP API with mail delivered by the real pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mail.inbox_helpers import error_code, ids, receive

pytestmark = pytest.mark.django_db


def all_pages(persona: Any, query: str) -> list[dict[str, Any]]:
    """What the SDK's iter_inbox_pages does: follow next_cursor until has_more is false."""
    items: list[dict[str, Any]] = []
    url = f"/v1/inbox?{query}"
    while True:
        response = persona.client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        items += body["items"]
        if not body["has_more"]:
            return items
        url = f"/v1/inbox?{query}&cursor={body['next_cursor']}"


# 2. Poll the inbox -------------------------------------------------------------------------
def test_2_list_inbox_returns_up_to_limit_oldest_first_with_message_id_and_sender_verified(
    owner: Any, deliver: Any
) -> None:
    made = [receive(deliver, owner, subject=f"m{i}") for i in range(3)]
    body = owner.client.get("/v1/inbox?limit=2").json()
    assert [i["MessageID"] for i in body["items"]] == [made[0].id, made[1].id]
    assert all(isinstance(i["SenderVerified"], bool) for i in body["items"])
    assert owner.client.get("/v1/inbox?limit=101").status_code == 400


def test_2_iter_inbox_pages_with_verified_only_yields_every_verified_message_once(owner: Any, deliver: Any) -> None:
    from mail.models import Message

    made = [receive(deliver, owner, subject=f"m{i}") for i in range(5)]
    Message.objects.filter(pk__in=[made[1].id, made[3].id, made[4].id]).update(sender_verified=True)
    items = all_pages(owner, "limit=2&verified_only=true")
    assert [i["MessageID"] for i in items] == [made[1].id, made[3].id, made[4].id]


# 3. Fetch a full message (raw MIME) --------------------------------------------------------
def test_3_get_message_has_raw_mime(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner, subject="raw please")
    assert "Subject: raw please" in owner.client.get(f"/v1/messages/{message.id}").json()["raw_mime"]


# 4. Delete a message -------------------------------------------------------------------------
def test_4_delete_message_then_it_is_gone(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    assert owner.client.delete(f"/v1/messages/{message.id}").status_code == 204
    assert ids(owner.client.get("/v1/inbox")) == []


# 6. Search the inbox -------------------------------------------------------------------------
def test_6_search_by_subject_body_preview_or_sender_combined_with_verified_only(owner: Any, deliver: Any) -> None:
    from mail.models import Message

    a = receive(deliver, owner, subject="Invoice 1")
    b = receive(deliver, owner, subject="Hello", body="your invoice")
    c = receive(deliver, owner, subject="x", sender="invoice@example.com")
    receive(deliver, owner, subject="nothing")
    assert {i["MessageID"] for i in all_pages(owner, "q=invoice")} == {a.id, b.id, c.id}
    Message.objects.filter(pk=b.id).update(sender_verified=True)
    assert [i["MessageID"] for i in all_pages(owner, "q=invoice&verified_only=true&limit=1")] == [b.id]


def test_6_an_empty_q_returns_400(owner: Any) -> None:
    response = owner.client.get("/v1/inbox?q=")
    assert response.status_code == 400 and error_code(response) == "empty_query"


# 7. Labels ---------------------------------------------------------------------------------
def test_7_patch_labels_add_and_remove_then_list_by_label(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    owner.client.patch(f"/v1/messages/{message.id}/labels", {"add": ["inbox"]}, format="json")
    response = owner.client.patch(
        f"/v1/messages/{message.id}/labels", {"add": ["needs-review", "urgent"], "remove": ["inbox"]}, format="json"
    )
    assert response.json()["Labels"] == ["needs-review", "urgent"]
    assert ids(owner.client.get("/v1/inbox?label=needs-review")) == [message.id]
    assert ids(owner.client.get("/v1/inbox?label=inbox")) == []


# 8. Read/Unread tracking ---------------------------------------------------------------------
def test_8_read_unread_unread_count_and_is_read_filter(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    other = receive(deliver, owner)
    owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": True}, format="json")
    assert owner.client.get("/v1/inbox/unread-count").json() == {"unread_count": 1}
    assert ids(owner.client.get("/v1/inbox?is_read=false")) == [other.id]
    owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": False}, format="json")
    assert owner.client.get("/v1/inbox/unread-count").json() == {"unread_count": 2}
    owner.client.patch(f"/v1/messages/{other.id}/archive", {"archived": True}, format="json")
    assert owner.client.get("/v1/inbox/unread-count").json() == {"unread_count": 1}


# 9. Archive -----------------------------------------------------------------------------------
def test_9_archive_hides_from_default_view_get_still_works_include_archived_shows_it(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    assert (
        owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": True}, format="json").status_code == 200
    )
    assert ids(owner.client.get("/v1/inbox")) == []
    assert owner.client.get(f"/v1/messages/{message.id}").status_code == 200
    assert ids(owner.client.get("/v1/inbox?include_archived=true")) == [message.id]
    assert (
        owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": False}, format="json").status_code == 200
    )
    assert ids(owner.client.get("/v1/inbox")) == [message.id]


# Common failure modes ----------------------------------------------------------------------------
def test_failure_404_on_get_message_after_delete_or_in_the_wrong_agent_scope(
    owner: Any, teammate: Any, deliver: Any
) -> None:
    message = receive(deliver, owner)
    wrong_scope = teammate.client.get(f"/v1/messages/{message.id}")
    assert wrong_scope.status_code == 404 and error_code(wrong_scope) == "message_not_found"
    owner.client.delete(f"/v1/messages/{message.id}")
    deleted = owner.client.get(f"/v1/messages/{message.id}")
    assert deleted.status_code == 404 and deleted.content == wrong_scope.content


def test_failure_400_on_get_inbox_with_empty_q(owner: Any) -> None:
    assert owner.client.get("/v1/inbox?q=").status_code == 400


@pytest.mark.parametrize("bad", ["", "x" * 65, "   "])
def test_failure_400_on_patch_labels_empty_too_long_or_whitespace(owner: Any, deliver: Any, bad: str) -> None:
    message = receive(deliver, owner)
    response = owner.client.patch(f"/v1/messages/{message.id}/labels", {"add": [bad]}, format="json")
    assert response.status_code == 400 and error_code(response) == "invalid_label"


def test_failure_400_on_patch_labels_when_the_message_already_has_20(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    url = f"/v1/messages/{message.id}/labels"
    assert owner.client.patch(url, {"add": [f"l{i}" for i in range(20)]}, format="json").status_code == 200
    response = owner.client.patch(url, {"add": ["l20"]}, format="json")
    assert response.status_code == 400 and error_code(response) == "too_many_labels"


def test_failure_409_on_patch_archive_of_an_archived_message(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner)
    url = f"/v1/messages/{message.id}/archive"
    owner.client.patch(url, {"archived": True}, format="json")
    response = owner.client.patch(url, {"archived": True}, format="json")
    assert response.status_code == 409 and error_code(response) == "already_archived"

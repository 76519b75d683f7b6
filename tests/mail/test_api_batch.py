"""GET /v1/messages?ids= and POST /v1/messages/batch: one transaction, scoped to the caller."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mail.models import Message, MessageLabel, Thread
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code, receive

pytestmark = pytest.mark.django_db


def test_it_reads_several_messages_in_the_order_asked(owner: Any) -> None:
    first, second = MessageFactory(agent=owner.agent), MessageFactory(agent=owner.agent)

    response = owner.client.get(f"/v1/messages?ids={second.id},{first.id},msg_unknown")

    assert response.status_code == 200
    body = response.json()
    assert [item["MessageID"] for item in body["items"]] == [second.id, first.id]
    assert "raw_mime" not in body["items"][0]
    assert body["not_found"] == ["msg_unknown"]


def test_a_batch_without_a_change_is_a_read(owner: Any) -> None:
    first, second = MessageFactory(agent=owner.agent), MessageFactory(agent=owner.agent)

    response = owner.client.post("/v1/messages/batch", {"ids": [second.id, first.id, "msg_unknown"]}, format="json")

    assert response.status_code == 200, response.content
    assert [item["MessageID"] for item in response.json()["items"]] == [second.id, first.id]
    assert response.json()["not_found"] == ["msg_unknown"]


def test_another_agents_or_accounts_ids_are_not_found(owner: Any, teammate: Any, stranger: Any) -> None:
    mine = MessageFactory(agent=owner.agent)
    teammates, strangers = MessageFactory(agent=teammate.agent), MessageFactory(agent=stranger.agent)

    read = owner.client.get(f"/v1/messages?ids={mine.id},{teammates.id},{strangers.id}")
    batch = owner.client.post(
        "/v1/messages/batch",
        {"ids": [mine.id, teammates.id, strangers.id], "add_labels": ["seen"], "is_read": True, "archived": True},
        format="json",
    )

    for response in (read, batch):
        assert response.status_code == 200, response.content
        assert [i["MessageID"] for i in response.json()["items"]] == [mine.id]
        assert response.json()["not_found"] == [teammates.id, strangers.id]
    for other in (teammates, strangers):
        other.refresh_from_db()
        assert (other.is_read, other.archived, other.labels.count()) == (False, False, 0)


def test_it_applies_every_change_to_every_message(deliver: Any, owner: Any) -> None:
    first, second = receive(deliver, owner, subject="One"), receive(deliver, owner, subject="Two")
    MessageLabel.objects.create(message=first, name="triage")

    response = owner.client.post(
        "/v1/messages/batch",
        {
            "ids": [first.id, second.id],
            "add_labels": ["done"],
            "remove_labels": ["triage"],
            "is_read": True,
            "archived": True,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    items = response.json()["items"]
    assert [(i["Labels"], i["IsRead"], i["Archived"]) for i in items] == [(["done"], True, True)] * 2
    assert list(Thread.objects.values_list("archived", "unread_count", "labels")) == [(True, 0, ["done"])] * 2


def test_a_batch_that_would_put_20_labels_on_one_message_changes_nothing(deliver: Any, owner: Any) -> None:
    roomy, full = receive(deliver, owner, subject="Roomy"), receive(deliver, owner, subject="Full")
    MessageLabel.objects.bulk_create([MessageLabel(message=full, name=f"l{i}") for i in range(19)])

    response = owner.client.post(
        "/v1/messages/batch",
        {"ids": [roomy.id, full.id], "add_labels": ["a", "b"], "is_read": True, "archived": True},
        format="json",
    )

    assert response.status_code == 400
    assert error_code(response) == "too_many_labels"
    assert response.json()["error"]["details"]["message_id"] == full.id
    assert not MessageLabel.objects.filter(message=roomy).exists()
    assert MessageLabel.objects.filter(message=full).count() == 19
    assert not Message.objects.filter(is_read=True).exists()
    assert not Message.objects.filter(archived=True).exists()


def test_a_batch_reads_only_the_columns_it_needs_of_each_message(owner: Any) -> None:
    # A whole row is ~35 columns (five JSON, the long search_upper), decoded per message:
    # the lock reads the state it changes, the items what an item shows (as_items()).
    first, second = MessageFactory(agent=owner.agent), MessageFactory(agent=owner.agent)

    with CaptureQueriesContext(connection) as ctx:
        response = owner.client.post(
            "/v1/messages/batch", {"ids": [first.id, second.id], "add_labels": ["seen"], "is_read": True}, format="json"
        )

    assert response.status_code == 200, response.content
    assert [i["Labels"] for i in response.json()["items"]] == [["seen"], ["seen"]]
    assert [q["sql"] for q in ctx.captured_queries if '"mail_message"."search_upper"' in q["sql"]] == []


def test_archiving_an_archived_message_in_a_batch_is_no_conflict(owner: Any) -> None:
    shelved = MessageFactory(agent=owner.agent, archived=True, storage_key="")
    fresh = MessageFactory(agent=owner.agent, storage_key="")

    response = owner.client.post("/v1/messages/batch", {"ids": [shelved.id, fresh.id], "archived": True}, format="json")

    assert response.status_code == 200
    assert [i["Archived"] for i in response.json()["items"]] == [True, True]


def test_archiving_a_batch_takes_as_many_queries_for_30_messages_as_for_3(deliver: Any, owner: Any) -> None:
    # Each message used to be locked, updated and copied to its label rows on its own.
    mail = [receive(deliver, owner, subject=f"m{i}") for i in range(36)]

    def archive(batch: list[Message]) -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = owner.client.post(
                "/v1/messages/batch", {"ids": [m.id for m in batch], "archived": True}, format="json"
            )
        assert response.status_code == 200, response.content
        assert {i["Archived"] for i in response.json()["items"]} == {True}
        return len(ctx.captured_queries)

    archive(mail[:3])  # the token's first use of the run is a query more
    assert archive(mail[3:6]) == archive(mail[6:])
    assert Message.objects.filter(archived=False).count() == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ids": []}, "validation_error"),
        ({"ids": [f"msg_{i}" for i in range(101)], "is_read": True}, "too_many_ids"),
        ({"ids": ["msg_a"], "add_labels": ["x"], "remove_labels": ["x"]}, "label_in_add_and_remove"),
        ({"ids": ["msg_a"], "add_labels": [""]}, "invalid_label"),
        ({"ids": ["msg_a"], "is_read": "yes"}, "validation_error"),
        ({"ids": ["msg_a"], "read": True}, "unknown_field"),
    ],
)
def test_it_rejects_a_bad_batch(owner: Any, body: Any, code: str) -> None:
    response = owner.client.post("/v1/messages/batch", body, format="json")

    assert response.status_code == 400
    assert error_code(response) == code


@pytest.mark.parametrize(
    ("query", "code"), [("", "validation_error"), ("ids=,", "validation_error"), ("ids=a&x=1", "unknown_parameter")]
)
def test_it_rejects_bad_ids(owner: Any, query: str, code: str) -> None:
    response = owner.client.get(f"/v1/messages?{query}")

    assert response.status_code == 400
    assert error_code(response) == code


def test_it_rejects_more_than_100_ids(owner: Any) -> None:
    response = owner.client.get("/v1/messages?ids=" + ",".join(f"msg_{i}" for i in range(101)))

    assert response.status_code == 400
    assert error_code(response) == "too_many_ids"

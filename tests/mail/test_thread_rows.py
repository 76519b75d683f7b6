"""mail.threads.threads_refresh: the Thread row of a conversation is kept current by every
write path (ingest, send, release, labels, read, archive, delete), in its transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assmbl import domain
from mail import services
from mail.models import Message, MessageLabel, Thread
from mail.release import message_release
from mail.threads import threads_refresh
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import receive
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def _row(message: Message) -> Thread:
    return Thread.objects.get(agent=message.agent, thread_id=message.thread_id)


def _reply_headers(parent: Message) -> dict[str, str]:
    return {"In-Reply-To": parent.internet_message_id, "References": parent.internet_message_id}


def test_ingest_writes_the_row_of_a_new_thread(deliver: Any, owner: Any) -> None:
    message = receive(deliver, owner, subject="Invoice 42", body="Please pay", sender="Dave <dave@example.com>")

    row = _row(message)
    assert (row.subject, row.message_count, row.unread_count, row.archived) == ("Invoice 42", 1, 1, False)
    assert row.participants == ["dave@example.com", owner.address]
    assert (row.first_message_at, row.last_message_at) == (message.received_at, message.received_at)
    assert row.last_message_id == message.id
    assert row.last_message_preview == message.body_preview
    assert row.labels == []


def test_a_reply_updates_the_counts_and_the_last_message(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Invoice 42", body="Please pay")
    reply = receive(
        deliver,
        owner,
        subject="Re: Invoice 42",
        body="Reminder",
        sender="Eve <eve@example.com>",
        headers=_reply_headers(first),
    )

    assert reply.thread_id == first.thread_id
    row = _row(first)
    assert (row.subject, row.message_count, row.unread_count) == ("Invoice 42", 2, 2)
    assert (row.first_message_at, row.last_message_at, row.last_message_id) == (
        first.received_at,
        reply.received_at,
        reply.id,
    )
    assert "Reminder" in row.last_message_preview
    assert set(row.participants) == {"alice@example.com", "eve@example.com", owner.address}
    assert Thread.objects.count() == 1


def test_a_batch_of_two_messages_of_one_thread_makes_one_row(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mail.ingest import Arrival, deliveries_accept

    parent = build_mail(to=owner.address, subject="Batch", headers={"Message-ID": "<p@example.com>"})
    child = build_mail(to=owner.address, subject="Re: Batch", headers={"In-Reply-To": "<p@example.com>"})
    with django_capture_on_commit_callbacks(execute=True):
        deliveries_accept([Arrival(raw, "smtp", [owner.address]) for raw in (parent, child)])

    (row,) = Thread.objects.filter(agent=owner.agent)
    assert row.message_count == 2


def test_held_mail_is_left_out_until_released(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Hello")
    held = receive(deliver, owner, subject="Re: Hello", headers=_reply_headers(first))
    Message.objects.filter(pk=held.pk).update(disposition=Message.Disposition.HELD)
    services.message_read_set(message=first, is_read=True)  # any write path rewrites the row
    assert _row(first).message_count == 1

    message_release(message=held)

    assert (_row(first).message_count, _row(first).last_message_id) == (2, held.id)


def test_sending_counts_the_sent_message_as_read(owner: Any, post: Any) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Quote", "body": "Here it is"})

    message = Message.objects.get(pk=response.json()["MessageID"])
    row = _row(message)
    assert (row.message_count, row.unread_count, row.last_message_id) == (1, 0, message.id)
    assert row.participants == [owner.address, "bob@example.com"]


def test_a_reply_sent_joins_the_thread_of_the_message_it_answers(deliver: Any, owner: Any, post: Any) -> None:
    original = receive(deliver, owner, subject="Question")

    response = post(owner, f"/v1/messages/{original.id}/reply", {"body": "Answer"})

    assert response.status_code == 202
    row = _row(original)
    assert (row.message_count, row.unread_count, row.last_message_id) == (2, 1, response.json()["MessageID"])


def test_read_label_archive_and_delete_keep_the_row_current(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Order")
    second = receive(deliver, owner, subject="Re: Order", headers=_reply_headers(first))

    services.message_read_set(message=first, is_read=True)
    assert _row(first).unread_count == 1
    services.message_labels_patch(message=first, add=["billing"])
    services.message_labels_patch(message=second, add=["urgent", "billing"])
    assert _row(first).labels == ["billing", "urgent"]
    services.message_labels_patch(message=second, remove=["urgent"])
    assert _row(first).labels == ["billing"]

    services.message_archive_set(message=second, archived=True)
    assert (_row(first).unread_count, _row(first).archived) == (0, False)
    services.message_archive_set(message=first, archived=True)
    assert _row(first).archived is True
    services.message_archive_set(message=first, archived=False)
    assert _row(first).archived is False

    services.message_delete(message=second)
    assert (_row(first).message_count, _row(first).last_message_id) == (1, first.id)
    services.message_delete(message=first)
    assert not Thread.objects.filter(thread_id=first.thread_id).exists()


def test_a_failed_label_patch_leaves_the_row_as_it_was(deliver: Any, owner: Any) -> None:
    message = receive(deliver, owner, subject="Full")
    services.message_labels_patch(message=message, add=[f"l{i}" for i in range(20)])

    with pytest.raises(domain.Invalid):
        services.message_labels_patch(message=message, add=["one-too-many"])

    assert len(_row(message).labels) == 20


def test_each_agent_has_its_own_row_of_a_mail_to_both(deliver: Any, owner: Any, teammate: Any) -> None:
    deliver(build_mail(to=[owner.address, teammate.address], subject="To both"), to=[owner.address, teammate.address])
    mine = Message.objects.get(agent=owner.agent)

    services.message_read_set(message=mine, is_read=True)

    theirs = Message.objects.get(agent=teammate.agent)
    assert _row(mine).unread_count == 0
    assert _row(theirs).unread_count == 1


def test_the_rows_of_threads_a_batch_creates_are_written_without_reading_them_back(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mail.ingest import Arrival, deliveries_accept, deliveries_process

    raws = [build_mail(to=owner.address, subject=f"New {i}") for i in range(3)]
    accepted = deliveries_accept([Arrival(raw, "smtp", [owner.address]) for raw in raws], queue=False)

    with CaptureQueriesContext(connection) as ctx:
        deliveries_process([a.delivery.pk for a in accepted])

    assert Thread.objects.filter(agent=owner.agent, message_count=1).count() == 3
    reads = [q["sql"] for q in ctx.captured_queries if '"mail_message"."thread_id" IN' in q["sql"]]
    assert reads == []
    # The thread rows' lock (mail.threads); the event log's writers take a lock of their own.
    assert not [q["sql"] for q in ctx.captured_queries if "pg_advisory_xact_lock(" in q["sql"]]


def _rows(agent: Any) -> list[tuple[Any, ...]]:
    return list(
        Thread.objects.filter(agent=agent)
        .order_by("thread_id")
        .values_list("thread_id", "message_count", "unread_count", "labels", "archived", "last_message_id")
    )


def test_a_batch_leaves_every_thread_row_as_summing_its_messages_would(owner: Any) -> None:
    # A thread of every kind of message a row counts or leaves out: received, sent (read
    # by definition), held (not the agent's to see), archived; and a thread without a row.
    agent = owner.agent
    thread = MessageFactory(agent=agent, storage_key="").thread_id
    kinds = [
        {},
        {"direction": Message.Direction.OUTBOUND, "is_read": True},
        {"disposition": Message.Disposition.HELD},
        {"archived": True},
    ]
    for kind in kinds:
        MessageFactory(agent=agent, thread_id=thread, storage_key="", **kind)
    rowless = MessageFactory(agent=agent, storage_key="", is_read=True)
    threads_refresh(keys=[(agent.pk, thread)])
    MessageLabel.objects.create(message=Message.objects.get(disposition="held"), name="hidden")
    changes: list[dict[str, Any]] = [
        {"is_read": True, "add_labels": ["a"]},
        {"is_read": False, "remove_labels": ["a"], "add_labels": ["b"]},
        {"add_labels": ["c"]},
        {"remove_labels": ["b", "c"]},
        {"is_read": True},
        {"is_read": False, "archived": True},
    ]

    for change in changes:
        services.messages_batch_update(messages=Message.objects.for_agent(agent), **change)

        shifted = _rows(agent)
        threads_refresh(keys=[(agent.pk, thread), (agent.pk, rowless.thread_id)])
        assert shifted == _rows(agent), change


def test_a_batch_shifts_the_thread_rows_without_reading_their_messages_back(deliver: Any, owner: Any) -> None:
    first = receive(deliver, owner, subject="Order")
    second = receive(deliver, owner, subject="Re: Order", headers=_reply_headers(first))

    with CaptureQueriesContext(connection) as ctx:
        services.messages_batch_update(
            messages=Message.objects.filter(pk__in=[first.pk, second.pk]), add_labels=["billing"], is_read=True
        )

    assert (_row(first).unread_count, _row(first).labels, _row(first).message_count) == (0, ["billing"], 2)
    sums = [sql for sql in (q["sql"] for q in ctx.captured_queries) if 'FROM "mail_message" WHERE' in sql]
    assert [sql for sql in sums if '"mail_message"."thread_id" IN' in sql] == []


def test_a_threads_labels_are_read_from_its_messages_not_from_every_label_row_of_the_mailbox(
    deliver: Any, owner: Any
) -> None:
    # The label rows' copy of the agent leads no index that also has the thread: filtering
    # on it walked every label row of the mailbox (100,000 at 1M) and fetched each message.
    message = receive(deliver, owner, subject="Labelled")

    with CaptureQueriesContext(connection) as ctx:
        services.message_labels_patch(message=message, add=["billing"])

    (read,) = [
        q["sql"] for q in ctx.captured_queries if 'FROM "mail_messagelabel" INNER JOIN "mail_message"' in q["sql"]
    ]
    assert '"mail_message"."agent_id" IN' in read
    assert _row(message).labels == ["billing"]

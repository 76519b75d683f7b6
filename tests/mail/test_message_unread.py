"""mail_messageunread (MessageUnread) holds exactly the unread mail an agent sees in its
inbox, after every path that writes mail_message: its one writer is the database's triggers
(mail.unread), so each test goes through a real writer and compares the table with the
definition read from mail_message. Both engines (DATABASE_URL for PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from directory.models import Agent
from mail.archival import archive_job_run, archive_job_start
from mail.models import Message, MessageUnread
from mail.release import message_release
from mail.unread import TRIGGERS
from tests.factories import MessageFactory
from tests.mime import build_mail

ALIGNED = {"spf": "pass", "spf_domain": "example.com", "dkim": "pass", "dkim_domains": ["example.com"]}


def _table() -> set[tuple[str, int, dt.datetime]]:
    return set(MessageUnread.objects.values_list("message_id", "agent_id", "received_at"))


def _definition() -> set[tuple[str, int, dt.datetime]]:
    visible_unread = Message.objects.filter(is_read=False, archived=False, direction="inbound", disposition="inbox")
    return set(visible_unread.values_list("id", "agent_id", "received_at"))


def _agrees(*expected_ids: str) -> None:
    assert _table() == _definition()
    assert {row[0] for row in _table()} == set(expected_ids)


def _delivered(owner: Any, deliver: Any, subject: str, **kwargs: Any) -> Message:
    deliver(build_mail(to=owner.address, subject=subject, **kwargs), to=owner.address)
    return Message.objects.get(agent=owner.agent, subject=subject)


def test_ingested_mail_is_in_the_table_and_quarantined_mail_is_not(owner: Any, deliver: Any, settings: Any) -> None:
    first = _delivered(owner, deliver, "first")
    second = _delivered(owner, deliver, "second")
    settings.MAX_HEADER_BYTES = 2048
    deliver(build_mail(to=owner.address, headers={"X-Padding": "x" * 4000}), to=owner.address)
    assert Message.objects.filter(disposition=Message.Disposition.QUARANTINED).count() == 1
    _agrees(first.id, second.id)


def test_one_insert_of_many_rows_adds_only_the_unread_inbox_ones(owner: Any) -> None:
    """Ingest inserts a batch of mail in one statement (bulk_create)."""
    rows = [
        MessageFactory.build(agent=owner.agent),
        MessageFactory.build(agent=owner.agent, is_read=True),
        MessageFactory.build(agent=owner.agent, archived=True),
        MessageFactory.build(agent=owner.agent, disposition=Message.Disposition.HELD),
        MessageFactory.build(agent=owner.agent, direction=Message.Direction.OUTBOUND),
        MessageFactory.build(agent=owner.agent),
    ]
    Message.objects.bulk_create(rows)
    _agrees(rows[0].id, rows[-1].id)


def test_a_read_flip_takes_the_message_out_and_back(owner: Any, deliver: Any) -> None:
    message = _delivered(owner, deliver, "flip")
    owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": True}, format="json")
    _agrees()
    owner.client.patch(f"/v1/messages/{message.id}/read", {"is_read": False}, format="json")
    _agrees(message.id)


def test_a_batch_flips_every_message_and_leaves_another_agents_as_they_were(owner: Any, stranger: Any) -> None:
    mine = MessageFactory.create_batch(3, agent=owner.agent)
    theirs = MessageFactory(agent=stranger.agent)
    response = owner.client.post(
        "/v1/messages/batch", {"ids": [m.id for m in mine] + [theirs.id], "is_read": True}, format="json"
    )
    assert response.json()["not_found"] == [theirs.id]
    _agrees(theirs.id)
    owner.client.post("/v1/messages/batch", {"ids": [mine[0].id], "is_read": False}, format="json")
    _agrees(theirs.id, mine[0].id)


def test_archiving_takes_the_message_out_and_restoring_puts_it_back(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": True}, format="json")
    _agrees()
    owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": False}, format="json")
    _agrees(message.id)


def test_the_bulk_archive_job_takes_old_mail_out(owner: Any) -> None:
    old = MessageFactory(agent=owner.agent, received_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    new = MessageFactory(agent=owner.agent)
    job = archive_job_start(action="archive", agent=owner.agent, older_than_days=30)
    archive_job_run(job_id=job.pk)
    _agrees(new.id)
    assert Message.objects.get(pk=old.pk).archived


def test_held_mail_enters_the_table_when_released(owner: Any, deliver: Any) -> None:
    owner.agent.policy = "verified_only"
    owner.agent.save(update_fields=["policy"])
    deliver(
        build_mail(to=owner.address, sender="alice@example.com", subject="held"),
        to=owner.address,
        authentication=ALIGNED,
    )
    held = Message.objects.get(agent=owner.agent, subject="held")
    assert held.disposition == Message.Disposition.HELD
    _agrees()
    assert message_release(message=held)
    _agrees(held.id)


def test_a_message_deleted_or_sent_leaves_no_row(owner: Any, post: Any) -> None:
    kept, deleted = MessageFactory.create_batch(2, agent=owner.agent)
    assert owner.client.delete(f"/v1/messages/{deleted.id}").status_code == 204
    post(owner, "/v1/send", {"to": "bob@example.com", "subject": "out", "body": "hi"})
    _agrees(kept.id)


def test_an_agent_deleted_takes_its_rows_with_it(owner: Any, teammate: Any) -> None:
    kept = MessageFactory(agent=teammate.agent)
    MessageFactory.create_batch(2, agent=owner.agent)
    Agent.objects.filter(pk=owner.agent.pk).delete()
    _agrees(kept.id)


def test_a_save_through_the_model_keeps_the_table(owner: Any) -> None:
    """The admin's change form saves every column of the row."""
    message = MessageFactory(agent=owner.agent)
    message.is_read = True
    message.save()
    _agrees()
    message.is_read, message.disposition = False, Message.Disposition.BLOCKED
    message.save()
    _agrees()
    message.disposition = Message.Disposition.INBOX
    message.save()
    _agrees(message.id)


def test_the_triggers_exist_at_the_latest_migration(db: Any) -> None:
    """On SQLite a migration that rebuilds mail_message drops its triggers (mail.unread)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'mail_message'::regclass AND NOT tgisinternal"
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'mail_message'")
        names = {row[0] for row in cursor.fetchall()}
    assert names == set(TRIGGERS)


BEFORE = [("mail", "0020_search_statistics")]
AFTER = [("mail", "0022_message_unread")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_the_unread_mail_already_there() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old: Any = executor.loader.project_state(BEFORE).apps
    account = old.get_model("directory", "Account").objects.create(name="m")
    agent = old.get_model("directory", "Agent").objects.create(agent_id="mig", account=account)
    message_model = old.get_model("mail", "Message")
    at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    for pk, fields in {
        "msg_unread": {},
        "msg_read": {"is_read": True},
        "msg_archived": {"archived": True},
        "msg_held": {"disposition": "held"},
        "msg_sent": {"direction": "outbound"},
    }.items():
        message_model.objects.create(id=pk, agent=agent, received_at=at, **{"direction": "inbound", **fields})
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new: Any = executor.loader.project_state(AFTER).apps
        rows = new.get_model("mail", "MessageUnread").objects.values_list("message_id", "agent_id", "received_at")
        assert list(rows) == [("msg_unread", agent.pk, at)]
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

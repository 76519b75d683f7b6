"""mail/migrations/0015_thread_rows_backfill writes the Thread row of every existing
conversation from its messages (GET /v1/threads lists mail indexed before it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("mail", "0014_thread_rows")]
AFTER = [("mail", "0015_thread_rows_backfill")]


@pytest.mark.django_db(transaction=True)
def test_it_backfills_a_row_per_visible_thread() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old: Any = executor.loader.project_state(BEFORE).apps
    account = old.get_model("directory", "Account").objects.create(name="m")
    agent = old.get_model("directory", "Agent").objects.create(agent_id="mig", account=account)
    message_model, label_model = old.get_model("mail", "Message"), old.get_model("mail", "MessageLabel")
    at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)

    def message(pk: str, thread: str, hours: int, **fields: Any) -> Any:
        return message_model.objects.create(
            id=pk, agent=agent, thread_id=thread, received_at=at + dt.timedelta(hours=hours), **fields
        )

    first = message("msg_1", "thr_a", 0, direction="inbound", subject="Hi", sender="a@example.com")
    message(
        "msg_2", "thr_a", 1, direction="outbound", subject="Re: Hi", sender="mig@x", is_read=True, body_preview="ok"
    )
    message("msg_3", "thr_b", 2, direction="inbound", disposition="held")
    label_model.objects.create(message=first, name="x", agent=agent, received_at=first.received_at)
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new: Any = executor.loader.project_state(AFTER).apps
        rows = list(new.get_model("mail", "Thread").objects.all())
        assert [(r.thread_id, r.subject, r.message_count, r.unread_count, r.labels) for r in rows] == [
            ("thr_a", "Hi", 2, 1, ["x"])
        ]
        assert (rows[0].last_message_id, rows[0].last_message_preview, rows[0].participants) == (
            "msg_2",
            "ok",
            ["a@example.com", "mig@x"],
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

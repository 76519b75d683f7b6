"""mail/migrations/0005_search_labels backfills the label rows' copies of their message's
agent, received_at and archived flag (the columns GET /v1/inbox?label=... walks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("mail", "0004_inbox_unread_and_thread_indexes")]
AFTER = [("mail", "0005_search_labels")]


@pytest.mark.django_db(transaction=True)
def test_it_backfills_existing_label_rows_from_their_message() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old: Any = executor.loader.project_state(BEFORE).apps
    account = old.get_model("directory", "Account").objects.create(name="m")
    agents = [old.get_model("directory", "Agent").objects.create(agent_id=f"mig{i}", account=account) for i in range(2)]
    message_model, label_model = old.get_model("mail", "Message"), old.get_model("mail", "MessageLabel")
    at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    kept = message_model.objects.create(id="msg_kept", agent=agents[0], direction="inbound", received_at=at)
    shelved = message_model.objects.create(
        id="msg_shelved", agent=agents[1], direction="inbound", received_at=at + dt.timedelta(hours=1), archived=True
    )
    for message in (kept, shelved):
        label_model.objects.create(message=message, name="x")
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new: Any = executor.loader.project_state(AFTER).apps
        rows = new.get_model("mail", "MessageLabel").objects.order_by("message_id")
        assert [(r.message_id, r.agent_id, r.received_at, r.archived) for r in rows] == [
            ("msg_kept", agents[0].pk, at, False),
            ("msg_shelved", agents[1].pk, at + dt.timedelta(hours=1), True),
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

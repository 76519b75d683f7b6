"""mail/migrations/0009_inbound_idempotency_sender scopes the keys already received to the
sender they were authenticated for: the sending agent of agent-to-agent mail, the From of
aligned mail; a key from an unauthenticated sender is left to deduplicate nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("mail", "0008_fewer_indexes_per_insert")]
AFTER = [("mail", "0009_inbound_idempotency_sender")]


@pytest.mark.django_db(transaction=True)
def test_it_scopes_the_keys_already_received_to_their_authenticated_sender() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old: Any = executor.loader.project_state(BEFORE).apps
    account = old.get_model("directory", "Account").objects.create(name="m")
    agent = old.get_model("directory", "Agent").objects.create(agent_id="mig", account=account)
    delivery_model, message_model = old.get_model("mail", "InboundDelivery"), old.get_model("mail", "Message")
    internal = delivery_model.objects.create(
        source="internal",
        external_id="internal:1",
        storage_key="k",
        size=1,
        sha256="s",
        envelope_from="Mate@Agents.test",
    )
    at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    rows = {
        "msg_internal": ("mate@agents.test", {"internal": True, "aligned": True}, internal, "k1"),
        "msg_aligned": ("alice@example.com", {"spf": "pass", "aligned": True}, None, "k2"),
        "msg_forged": ("bob@example.com", {"spf": "fail", "aligned": False}, None, "k3"),
        "msg_unkeyed": ("carol@example.com", {"spf": "pass", "aligned": True}, None, ""),
    }
    for pk, (sender, authentication, delivery, key) in rows.items():
        message_model.objects.create(
            id=pk, agent=agent, direction="inbound", received_at=at, sender=sender,
            authentication=authentication, delivery=delivery, idempotency_key=key,
        )  # fmt: skip
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new: Any = executor.loader.project_state(AFTER).apps
        scoped = dict(new.get_model("mail", "Message").objects.values_list("id", "idempotency_sender"))
        assert scoped == {
            "msg_internal": "mate@agents.test",
            "msg_aligned": "alice@example.com",
            "msg_forged": "",
            "msg_unkeyed": "",
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

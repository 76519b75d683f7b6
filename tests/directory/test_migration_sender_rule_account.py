"""directory/migrations/0005_sender_rule_account: agent rules take their agent's account;
a rule that was global stays global (staff-owned), since who made it was never recorded."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("directory", "0004_fewer_indexes_per_insert")]
AFTER = [("directory", "0005_sender_rule_account")]


@pytest.mark.django_db(transaction=True)
def test_agent_rules_take_their_agents_account_and_global_rules_stay_global() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old: Any = executor.loader.project_state(BEFORE).apps
    accounts = [old.get_model("directory", "Account").objects.create(name=f"m{i}") for i in range(2)]
    agent_model, rule_model = old.get_model("directory", "Agent"), old.get_model("directory", "SenderRule")
    agents = [agent_model.objects.create(agent_id=f"mig{i}", account=a) for i, a in enumerate(accounts)]
    rule_model.objects.create(agent=agents[0], pattern="a.test", action="block")
    rule_model.objects.create(agent=agents[1], pattern="a.test", action="allow")
    rule_model.objects.create(agent=None, pattern="spam.test", action="block")
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new: Any = executor.loader.project_state(AFTER).apps
        rows = new.get_model("directory", "SenderRule").objects.order_by("pattern", "action")
        assert [(r.pattern, r.agent_id, r.account_id) for r in rows] == [
            ("a.test", agents[1].pk, accounts[1].pk),
            ("a.test", agents[0].pk, accounts[0].pk),
            ("spam.test", None, None),
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

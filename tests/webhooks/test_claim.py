"""The dispatcher's claim: concurrent dispatchers never take the same due delivery."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from webhooks.models import Delivery
from webhooks.services import deliveries_claim, endpoint_create, event_record


@pytest.mark.postgres
def test_concurrent_dispatchers_claim_disjoint_batches(
    transactional_db: Any, owner: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not settings.IS_POSTGRES:
        pytest.skip("row locks (skip_locked) are PostgreSQL-only")
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    # Autocommit runs on-commit kicks at once; here the rows must wait for the dispatchers.
    monkeypatch.setattr("webhooks.services._dispatch", lambda seq: None)
    endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/never")
    for _ in range(40):
        event_record(agent=owner.agent, type="message.received", payload={})
    claimed: list[list[str]] = []
    barrier = threading.Barrier(4)

    def dispatcher() -> None:
        barrier.wait()
        try:
            claimed.append(deliveries_claim(limit=15))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    every = [i for batch in claimed for i in batch]
    assert len(every) == len(set(every)) == 40
    assert Delivery.objects.count() == 40

"""Racing duplicates of one Idempotency-Key on a real PostgreSQL: exactly one send."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from mail.models import Message, SendRequest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]


def test_it_sends_once_for_50_concurrent_requests_with_one_key(transactional_db: Any, owner: Any) -> None:
    body = {"to": "bob@example.com", "subject": "Race", "body": "once"}
    barrier = threading.Barrier(50)

    def attempt(_: int) -> tuple[int, str, dict[str, Any]]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.token}")
        try:
            barrier.wait()
            response = client.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="race-1")
            return response.status_code, response.headers.get("Idempotent-Replayed", ""), response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(attempt, range(50)))

    assert Message.objects.outbound().count() == 1
    message = Message.objects.get()
    assert message.status == Message.Status.SENT
    statuses = sorted({status for status, _, _ in results})
    assert set(statuses) <= {202, 409}
    fresh = [r for r in results if r[0] == 202 and r[1] != "true"]
    assert len(fresh) == 1
    for status, _, data in results:
        if status == 202:
            assert data["MessageID"] == message.id
        else:
            assert data["error"]["code"] == "idempotency_key_in_use"
    assert SendRequest.objects.get().state == SendRequest.State.COMPLETED
    # After the race, a retry replays.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.token}")
    again = client.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="race-1")
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"

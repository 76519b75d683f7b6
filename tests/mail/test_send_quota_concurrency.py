"""Quotas under concurrency on a real PostgreSQL: 50 sends at once, exactly the quota goes
out and every other one is a 429 quota_exceeded."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from directory.models import OutboundPolicy
from mail.models import Message, SendCounter

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

SENDS = 50
QUOTA = 7


def test_exactly_the_quota_goes_out_of_50_concurrent_sends(transactional_db: Any, owner: Any) -> None:
    OutboundPolicy.objects.create(agent=owner.agent, max_per_hour=QUOTA)
    barrier = threading.Barrier(SENDS)

    def attempt(i: int) -> tuple[int, str]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.token}")
        try:
            barrier.wait()
            response = client.post(
                "/v1/send", {"to": "bob@example.com", "subject": f"n{i}", "body": "b"}, format="json"
            )
            return response.status_code, response.json().get("error", {}).get("code", "")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=SENDS) as pool:
        results = list(pool.map(attempt, range(SENDS)))

    assert sorted(results).count((202, "")) == QUOTA, results
    assert sorted(results).count((429, "quota_exceeded")) == SENDS - QUOTA, results
    assert Message.objects.outbound().count() == QUOTA
    assert SendCounter.objects.get(agent=owner.agent, window="hour").count == QUOTA

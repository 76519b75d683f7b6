"""PostgreSQL-only proof: concurrent accepts of the same arrivals take their rows' locks in
one order (external ids sorted), so they never deadlock, whatever order each receives them in."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from mail.ingest import Arrival, deliveries_accept
from mail.models import InboundDelivery
from mail.storage import raws_store
from tests.concurrency import run_concurrently
from tests.mime import build_mail

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

# The deadlock needs two INSERTs to run at the same moment: many small rounds give it the
# most chances (on main, 9 runs of this test out of 10 deadlocked).
ROUNDS = 40
ARRIVALS = 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_of_the_same_arrivals_in_opposite_orders_never_deadlock(owner: Any) -> None:
    # At-least-once sources (SQS, SNS) and an SMTP client retrying on a second connection
    # hand the same mail to two accepts at once, in any order.
    for attempt in range(ROUNDS):
        raws = [build_mail(to=owner.address, subject=f"{attempt} {i}") for i in range(ARRIVALS)]
        # Stored once beforehand (as the listener does on S3), so the accepts meet at their INSERT.
        arrivals = [
            Arrival(raw, "smtp", [owner.address], stored=stored)
            for raw, stored in zip(raws, raws_store(raws), strict=True)
        ]
        orders = [arrivals, arrivals[::-1], arrivals[::2] + arrivals[1::2], arrivals[1::2] + arrivals[::2]]

        run_concurrently([lambda order=order: deliveries_accept(order, queue=False) for order in orders])

        assert InboundDelivery.objects.filter(size__gt=0).count() == (attempt + 1) * ARRIVALS

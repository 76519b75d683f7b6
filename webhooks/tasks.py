"""Celery tasks of webhooks: thin wrappers over webhooks.services.

The schedule lives in the database (``Delivery.next_attempt_at``), not in Celery countdowns:
``dispatch_due_deliveries`` runs every few seconds (CELERY_BEAT_SCHEDULE), claims a bounded
batch of due rows and fans each attempt out to its own task, so a receiver that hangs until the
timeout occupies one worker slot and never delays the others.
"""

from __future__ import annotations

from celery import shared_task

from webhooks.services import deliveries_claim, delivery_attempt


@shared_task(ignore_result=True)
def send_delivery(delivery_id: str) -> None:
    # Not retried by Celery: a failed attempt is already rescheduled in the row, and a
    # worker lost mid-attempt leaves a lapsing claim that the dispatcher picks up again.
    delivery_attempt(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def dispatch_event(seq: int) -> int:
    """The on-commit kick: the immediate first attempt of a new event's deliveries."""
    ids = deliveries_claim(event_seq=seq)
    for delivery_id in ids:
        send_delivery.delay(delivery_id)
    return len(ids)


@shared_task(ignore_result=True)
def dispatch_due_deliveries() -> int:
    ids = deliveries_claim()
    for delivery_id in ids:
        send_delivery.delay(delivery_id)
    return len(ids)

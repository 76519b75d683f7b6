"""Celery tasks of webhooks: thin wrappers over webhooks.services.

The schedule lives in the database (``Delivery.next_attempt_at``), not in Celery countdowns:
``dispatch_due_deliveries`` runs every few seconds (CELERY_BEAT_SCHEDULE), claims a bounded
batch of due rows and fans each attempt out to its own task, so a receiver that hangs until the
timeout occupies one worker slot and never delays the others. Every task here runs on the
``webhooks`` queue (CELERY_TASK_ROUTES), which has workers of its own: however long it grows,
mail is indexed and sent by other workers. It holds at most WEBHOOKS_MAX_IN_FLIGHT attempts
(the dispatcher queues no more, and never queues a row twice: ``deliveries_claim``), besides
one cheap kick per new event and beat's ticks, which expire rather than pile up.
"""

from __future__ import annotations

from celery import shared_task

from webhooks.services import deliveries_claim, deliveries_release, delivery_attempt, events_prune


@shared_task(ignore_result=True)
def send_delivery(delivery_id: str) -> None:
    # Not retried by Celery: a failed attempt is already rescheduled in the row, and a
    # worker lost mid-attempt leaves a lapsing claim that the dispatcher picks up again.
    delivery_attempt(delivery_id=delivery_id)


def _queue(ids: list[str]) -> int:
    for n, delivery_id in enumerate(ids):
        try:
            send_delivery.delay(delivery_id)
        except Exception:
            deliveries_release(ids=ids[n:])
            raise
    return len(ids)


@shared_task(ignore_result=True)
def dispatch_event(seq: int) -> int:
    """The on-commit kick: the immediate first attempt of a new event's deliveries (when the
    queue has room; otherwise the periodic dispatcher queues them as it drains)."""
    return _queue(deliveries_claim(event_seq=seq))


@shared_task(ignore_result=True)
def dispatch_due_deliveries() -> int:
    return _queue(deliveries_claim())


@shared_task(ignore_result=True)
def prune_events() -> int:
    return events_prune()

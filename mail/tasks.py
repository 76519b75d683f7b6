"""Celery tasks of the mail app: thin wrappers that re-fetch and call a service."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone

from mail.ingest import delivery_process
from mail.models import InboundDelivery

STALE_AFTER = dt.timedelta(minutes=2)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError, OSError),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=20,
)
def process_delivery(delivery_id: str) -> str:
    delivery = delivery_process(delivery_id)
    return delivery.status


@shared_task
def sweep_stored_deliveries() -> int:
    """Re-queue deliveries that were stored but never processed (a lost task, a broker
    outage between commit and publish). Processing is idempotent, so a spare run is harmless."""
    cutoff = timezone.now() - STALE_AFTER
    ids = list(
        InboundDelivery.objects.filter(
            status__in=[InboundDelivery.Status.STORED, InboundDelivery.Status.FAILED], received_at__lt=cutoff
        ).values_list("id", flat=True)[:1000]
    )
    for delivery_id in ids:
        process_delivery.delay(delivery_id)
    return len(ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_archive_job(job_id: int) -> str:
    from mail.archival import archive_job_run

    return archive_job_run(job_id=job_id).state

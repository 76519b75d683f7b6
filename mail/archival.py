"""Bulk archival by agent and age, for staff: archive, restore, and purge past retention.
Each message goes through the same service as the API's PATCH .../archive and DELETE."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from assmbl.celery import task_queue
from directory.models import Agent
from mail import services
from mail.message_content import message_contents_forget
from mail.models import ArchiveJob, Message

BATCH = 200


def archive_job_start(*, action: str, agent: Agent | None, older_than_days: int, created_by: Any = None) -> ArchiveJob:
    with transaction.atomic():
        job = ArchiveJob.objects.create(
            action=action, agent=agent, older_than_days=older_than_days, created_by=created_by
        )
        transaction.on_commit(lambda: task_queue("mail.tasks.run_archive_job", job.pk))
    return job


def _targets(job: ArchiveJob) -> Any:
    cutoff = timezone.now() - dt.timedelta(days=job.older_than_days)
    qs = Message.objects.older_than(cutoff)
    if job.agent_id:
        qs = qs.filter(agent_id=job.agent_id)
    return qs.archived() if job.action in (ArchiveJob.Action.RESTORE, ArchiveJob.Action.PURGE) else qs.not_archived()


def archive_job_run(*, job_id: int) -> ArchiveJob:
    """Idempotent: a re-run picks up what is left (the target set shrinks as it works)."""
    claimed = ArchiveJob.objects.filter(
        pk=job_id, state__in=[ArchiveJob.State.PENDING, ArchiveJob.State.RUNNING]
    ).update(state=ArchiveJob.State.RUNNING)
    job = ArchiveJob.objects.get(pk=job_id)
    if not claimed:
        return job
    job.total = job.done + _targets(job).count()
    job.save(update_fields=["total"])
    try:
        while True:
            batch = list(_targets(job).select_related("agent").order_by("received_at", "id")[:BATCH])
            if not batch:
                break
            for message in batch:
                if job.action == ArchiveJob.Action.PURGE:
                    services.message_delete(message=message)
                else:
                    services.message_archive_set(message=message, archived=job.action == ArchiveJob.Action.ARCHIVE)
            if job.action == ArchiveJob.Action.ARCHIVE:
                message_contents_forget(messages=batch)
            job.done += len(batch)
            job.save(update_fields=["done"])
    except Exception as exc:
        ArchiveJob.objects.filter(pk=job.pk).update(
            state=ArchiveJob.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    ArchiveJob.objects.filter(pk=job.pk).update(state=ArchiveJob.State.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    return job

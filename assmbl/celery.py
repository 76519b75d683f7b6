"""The Celery app. Tasks live in each app's tasks.py; this module only wires them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.signals import worker_init
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")

app = Celery("assmbl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _broker_folders(sender: Celery, **kwargs: object) -> None:
    """kombu's filesystem transport (the embedded broker) fails on a missing folder, in
    whichever process publishes first: the SMTP listener, the web server or the worker."""
    options = sender.conf.broker_transport_options or {}
    if str(sender.conf.broker_url).startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if options.get(key):
                os.makedirs(options[key], exist_ok=True)


def task_queue(name: str, *args: Any) -> None:
    """Queue a task by its name (``"mail.tasks.send_message"``), so that a service queues the
    task that calls it without importing the tasks module: imports point one way, tasks →
    services. It is the registered task object, so its options, its route and, in tests,
    eager execution apply as with ``task.delay``; every app's tasks module is registered when
    Django starts (``assmbl.apps.AssmblConfig.ready``), in every process that may queue."""
    app.tasks[name].delay(*args)


# Queues whose work may wait for spare CPU: what a reader sees of a mail (content rows,
# attachments as text) is computed on a read when a worker has not got to it yet.
BACKGROUND_QUEUES = frozenset({"content"})


def worker_nice_increment(queues: Iterable[str]) -> int:
    """How much a worker consuming ``queues`` lowers its CPU priority: CONTENT_WORKER_NICE
    when it consumes background queues only, so that the listener and the ingest workers get
    the CPU first under a burst; 0 for any other worker (one started without ``--queues``
    consumes every queue and keeps its priority)."""
    names = set(queues)
    return int(settings.CONTENT_WORKER_NICE) if names and names <= BACKGROUND_QUEUES else 0


def cpu_priority_lower(increment: int) -> None:
    """Lower this process's CPU priority (inherited by the pool's children, forked later).
    Linux's autogroups: ``nice`` orders processes within one session's group, and groups are
    scheduled against each other by the group's own nice value. A worker that leads its
    session (``manage.py serve``, a systemd unit) is alone in its group, so the group's value
    is lowered too; one that shares a session with others (a shell, bench/smtp.py) only
    lowers its own, which is what orders it against them."""
    os.nice(increment)
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(min(increment, 19)))
    except OSError:  # no autogroups (not Linux, or the kernel has them off): nice alone is enough
        pass


@worker_init.connect
def _background_worker_yields(sender: Any, **kwargs: object) -> None:
    """In the worker's main process, once its queues are chosen and before its pool starts."""
    increment = worker_nice_increment(sender.app.amqp.queues.consume_from)
    if increment > 0:
        cpu_priority_lower(increment)

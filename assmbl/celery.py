"""The Celery app. Tasks live in each app's tasks.py; this module only wires them."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

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

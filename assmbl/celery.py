"""The Celery app. Tasks live in each app's tasks.py; this module only wires them."""

from __future__ import annotations

import os

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

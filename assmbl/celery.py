"""The Celery app. Tasks live in each app's tasks.py; this module only wires them."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")

app = Celery("assmbl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

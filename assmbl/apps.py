from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate

from assmbl import checks, pgarrays  # noqa: F401  (checks registers the system checks)
from assmbl.celery import app as celery_app
from assmbl.groups import ensure_moderator_group


class AssmblConfig(AppConfig):
    name = "assmbl"
    verbose_name = "Assmbl Mail"

    def ready(self) -> None:
        post_migrate.connect(ensure_moderator_group, dispatch_uid="assmbl-moderator-group")
        # Batched inserts send one array per column; escape them in C (assmbl/pgarrays.py).
        connection_created.connect(pgarrays.install, dispatch_uid="assmbl-pg-arrays")
        # Register every app's tasks now, in every process (web, listener, worker, tests):
        # services queue their tasks by name (assmbl.celery.task_queue).
        celery_app.autodiscover_tasks(force=True)

from __future__ import annotations

from django.apps import AppConfig


class AssmblConfig(AppConfig):
    name = "assmbl"
    verbose_name = "Assmbl Mail"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from assmbl import checks, pgarrays  # noqa: F401  (checks registers the system checks)
        from assmbl.groups import ensure_moderator_group

        post_migrate.connect(ensure_moderator_group, dispatch_uid="assmbl-moderator-group")
        # Batched inserts send one array per column; escape them in C (assmbl/pgarrays.py).
        connection_created.connect(pgarrays.install, dispatch_uid="assmbl-pg-arrays")

from __future__ import annotations

from django.apps import AppConfig


class AssmblConfig(AppConfig):
    name = "assmbl"
    verbose_name = "Assmbl Mail"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from assmbl import checks  # noqa: F401  (registers the system checks)
        from assmbl.groups import ensure_moderator_group

        post_migrate.connect(ensure_moderator_group, dispatch_uid="assmbl-moderator-group")

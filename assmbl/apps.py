from __future__ import annotations

from django.apps import AppConfig


class AssmblConfig(AppConfig):
    name = "assmbl"
    verbose_name = "Assmbl Mail"

    def ready(self) -> None:
        from assmbl import checks  # noqa: F401  (registers the system checks)

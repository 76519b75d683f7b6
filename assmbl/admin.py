"""The admin's building blocks every app's admin may use (read-only record pages), and its
AppConfig, which names the site (``assmbl.site``: the dashboard reads mail, so it is wiring)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class ReadOnly:
    """No add, change or delete permission for anyone, superusers included."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordAdmin(ReadOnly, admin.ModelAdmin):
    """A record the system writes (an event, a delivery, an attempt): staff may look at it,
    never add, edit or delete it, superusers included. A hand-made event would be pushed to
    every webhook of its agent; an edited attempt would lie about what a receiver said. A
    subclass that needs a deliberate state change offers it as an action that calls the
    service, with its own permission (``permissions=["..."]`` and ``has_..._permission``)."""


class RecordInline(ReadOnly, admin.TabularInline):
    """The records of a record page (a delivery's attempts), read-only like it."""

    extra = 0


class AssmblAdminConfig(AdminConfig):
    default_site = "assmbl.site.AssmblAdminSite"

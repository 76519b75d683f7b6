"""The admin site: Django's, with a dashboard on the index page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse


class RecordAdmin(admin.ModelAdmin):
    """A record the system writes (an event, a delivery, an attempt): staff may look at it,
    never add, edit or delete it, superusers included. A hand-made event would be pushed to
    every webhook of its agent; an edited attempt would lie about what a receiver said. A
    subclass that needs a deliberate state change offers it as an action that calls the
    service, with its own permission (``permissions=["..."]`` and ``has_..._permission``)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordInline(admin.TabularInline):
    """The records of a record page (a delivery's attempts), read-only like it."""

    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AssmblAdminSite(admin.AdminSite):
    site_header = "Assmbl Mail"
    site_title = "Assmbl Mail staff"
    index_title = "Moderation and archival"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from mail.stats import dashboard

        extra_context = {**(extra_context or {}), "dashboard": dashboard()}
        return super().index(request, extra_context)


class AssmblAdminConfig(AdminConfig):
    default_site = "assmbl.admin.AssmblAdminSite"

"""The admin site: Django's, with a dashboard of mail on the index page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from mail.stats import dashboard


class AssmblAdminSite(admin.AdminSite):
    site_header = "Assmbl Mail"
    site_title = "Assmbl Mail staff"
    index_title = "Moderation and archival"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        extra_context = {**(extra_context or {}), "dashboard": dashboard()}
        return super().index(request, extra_context)

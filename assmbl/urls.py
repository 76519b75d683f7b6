"""URL wiring. Each app owns its routes; the public API lives under /v1/."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from assmbl.errors import error_response

api_patterns: list[URLPattern | URLResolver] = [
    path("", include("mail.urls")),
    path("", include("directory.urls")),
    path("", include("webhooks.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("v1/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("", include("mail.public_urls")),
    path("", include("mail.sources.urls")),
]


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_response(404, "not_found", "No such resource.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return error_response(500, "internal_error", "Something went wrong on our side.")
    from django.views.defaults import server_error

    return server_error(request)

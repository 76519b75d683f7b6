"""Errors that happen before DRF sees a request still get the API's envelope."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from assmbl.envelope import TOO_LARGE
from assmbl.errors import error_response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/")


_HTML_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    500: "internal_error",
}
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class ApiEnvelopeMiddleware:
    """413 with the envelope for API bodies over MAX_REQUEST_BYTES, 400 ``invalid_host`` for
    a Host outside ALLOWED_HOSTS, and the envelope for any HTML error page Django makes
    under /v1/ (the 404 of an unknown path, or DEBUG's technical pages, which bypass
    ``handler404``/``handler500``): agents parse every error body, so it is never HTML.

    Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE only when ``request.body`` or a form is
    read; DRF's JSON parser reads the stream directly, so without this check an API body
    of any size would be parsed. The Content-Length is checked before anything is read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_api(request):
            try:
                # Asked here, first: CommonMiddleware would raise it, and Django answer HTML.
                request.get_host()
            except DisallowedHost:
                return error_response(400, "invalid_host", "The Host header names a host this service does not serve.")
        response = self.get_response(request)
        if (
            _is_api(request)
            and response.status_code >= 400
            and response.get("Content-Type", "").startswith("text/html")
        ):
            status = response.status_code
            if status == 404:
                return error_response(404, "not_found", "No such resource.")
            return error_response(status, _HTML_ERROR_CODES.get(status, "error"), f"{_PHRASES.get(status, 'Error')}.")
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        # After URL resolution, so that a view which streams its body to storage (the
        # attachment upload, with its own declared-size check) can opt out of the JSON cap.
        if not _is_api(request) or getattr(getattr(view_func, "cls", None), "streams_request_body", False):
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "invalid_request", "Content-Length is not a number.")
        if limit is not None and length > limit:
            return error_response(413, "payload_too_large", TOO_LARGE, {"max_bytes": limit})
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A plain Django view under /v1/ that reads request.body of an oversized request.
        if _is_api(request) and isinstance(exception, RequestDataTooBig):
            return error_response(
                413, "payload_too_large", TOO_LARGE, {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
            )
        return None

"""Errors that happen before DRF sees a request still get the API's envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from assmbl.errors import error_response

_TOO_LARGE = "The request body is larger than the limit."


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/")


class ApiEnvelopeMiddleware:
    """413 with the envelope for API bodies over MAX_REQUEST_BYTES, and the envelope for a
    404 of an unknown /v1/ path even under DEBUG (where Django's technical 404 page would
    bypass ``handler404``): agents parse every error body, so it is never HTML.

    Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE only when ``request.body`` or a form is
    read; DRF's JSON parser reads the stream directly, so without this check an API body
    of any size would be parsed. The Content-Length is checked before anything is read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            _is_api(request)
            and response.status_code == 404
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return error_response(404, "not_found", "No such resource.")
        return response

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any) -> HttpResponse | None:
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
            return error_response(413, "payload_too_large", _TOO_LARGE, {"max_bytes": limit})
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A plain Django view under /v1/ that reads request.body of an oversized request.
        if _is_api(request) and isinstance(exception, RequestDataTooBig):
            return error_response(
                413, "payload_too_large", _TOO_LARGE, {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
            )
        return None

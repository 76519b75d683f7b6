"""The one error envelope of the API and the DRF exception handler that produces it.

Every 4xx/5xx body is ``{"error": {"code", "message", "details"}}`` (API.md). Services raise
``assmbl.domain`` errors, which ``DOMAIN_STATUS`` maps to a status; the HTTP layer (input
validation, authentication, views) raises ``ApiError`` subclasses or DRF's own exceptions.
Views never build error bodies by hand nor translate a service's error.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from assmbl import domain
from assmbl.envelope import error_body

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with a documented snake_case code. Subclasses set status_code and code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "invalid_request"
    default_detail = "The request is invalid."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None) -> None:
        self.message = message or str(self.default_detail)
        if code:
            self.code = code
        self.details = details
        super().__init__(self.message, self.code)


class ValidationFailed(ApiError):
    status_code = 400
    code = "validation_error"
    default_detail = "The request is invalid."


class NotFound(ApiError):
    status_code = 404
    code = "not_found"
    default_detail = "No such resource."


class Conflict(ApiError):
    status_code = 409
    code = "conflict"
    default_detail = "The resource is in a state that does not allow this."


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"
    default_detail = "The request is too large."


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"
    default_detail = "This media type is not supported."


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def error_response(status_code: int, code: str, message: str, details: Any = None) -> JsonResponse:
    """For plain Django views (404/500 handlers, middleware) outside DRF."""
    return JsonResponse(error_body(code, message, details), status=status_code)


def _validation_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            return f"{field}: {_validation_message(value)}"
    if isinstance(detail, list) and detail:
        return _validation_message(detail[0])
    return str(detail)


# The one table from a service's error to the API's status; its code is the error's own.
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.Invalid: status.HTTP_400_BAD_REQUEST,
    domain.InvalidQuery: status.HTTP_400_BAD_REQUEST,
    domain.NotFound: status.HTTP_404_NOT_FOUND,
    domain.Conflict: status.HTTP_409_CONFLICT,
    domain.Gone: status.HTTP_410_GONE,
    domain.TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    domain.Unsupported: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    domain.TooMany: status.HTTP_429_TOO_MANY_REQUESTS,
    domain.Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    domain.DomainError: status.HTTP_400_BAD_REQUEST,
}


def domain_status(exc: domain.DomainError) -> int:
    return next(DOMAIN_STATUS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_STATUS)


def _domain_response(exc: domain.DomainError) -> Response:
    retry_after = exc.retry_after if isinstance(exc, (domain.TooMany, domain.Unavailable)) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    set_rollback()
    return Response(error_body(exc.code, exc.message, exc.details), status=domain_status(exc), headers=headers)


_DRF_CODES = {
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "invalid_json",
    exceptions.Throttled: "rate_limited",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, domain.DomainError):
        return _domain_response(exc)
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("The request body is larger than the limit.")
    elif isinstance(exc, DataError):
        # A value the database refuses (PostgreSQL: a NUL character in a path id, a query
        # parameter or a JSON string) is the request's fault, not an outage: 400, not 503.
        exc = ValidationFailed("A value in the request cannot be stored or searched for.", code="invalid_value")
    elif isinstance(exc, (OperationalError, InterfaceError, DatabaseError)):
        # The database is down or restarting: say so and let the client retry, rather
        # than a bare 500 that looks like a bug in the request.
        log.warning("database unavailable: %s", exc)
        set_rollback()
        body = error_body("service_unavailable", "The service is temporarily unavailable; retry shortly.")
        return Response(body, status=503, headers={"Retry-After": "2"})

    if isinstance(exc, ApiError):
        body = error_body(exc.code, exc.message, exc.details)
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, exceptions.ValidationError):
        body = error_body("validation_error", _validation_message(exc.detail), exc.detail)
    elif isinstance(exc, exceptions.APIException):
        code = _DRF_CODES.get(type(exc), "error")
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else _validation_message(exc.detail)
        body = error_body(code, message, None)
        # djangorestframework-stubs declare `wait` only as Throttled.__init__'s argument.
        wait: float | None = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
        if wait is not None:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    else:
        return None

    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
        exc.status_code = status.HTTP_401_UNAUTHORIZED
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)

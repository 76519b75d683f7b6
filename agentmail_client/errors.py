"""Exceptions raised by the client. Every API error carries the envelope's fields:
``{"error": {"code", "message", "details"}}`` (API.md)."""

from __future__ import annotations

from typing import Any


class AgentMailError(Exception):
    """Base class: an error answer from the API, or a failure to reach it.

    ``status`` is the HTTP status (``None`` when no answer came back), ``code`` the
    documented snake_case code, ``message`` the server's sentence, ``details`` its extra data.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status is not None else ""
        return f"{prefix}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class AuthenticationError(AgentMailError):
    """401: the token is missing, wrong or revoked."""


class PermissionDeniedError(AgentMailError):
    """403: the token is valid but of the wrong kind (an agent token on an operator endpoint)."""


class NotFoundError(AgentMailError):
    """404: no such object, or it belongs to another agent (the API does not tell them apart)."""


class ConflictError(AgentMailError):
    """409: the object's state forbids this (``already_archived``, ``idempotency_key_reused``...)."""


class ValidationError(AgentMailError):
    """400, 413 or 422: the request itself is wrong (``empty_query``, ``payload_too_large``...)."""


class RateLimitError(AgentMailError):
    """429: slow down. ``retry_after`` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(AgentMailError):
    """5xx: the server failed. Retried automatically; raised when the retries run out."""


class TransportError(AgentMailError, ConnectionError):
    """No usable answer: connection refused or dropped, or a timeout. Also a ``ConnectionError``."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(None, "transport_error", message, None)
        self.cause = cause


class WebhookVerificationError(Exception):
    """A webhook whose signature, timestamp or headers do not verify. Never process its body."""


_BY_STATUS: dict[int, type[AgentMailError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(status: int) -> type[AgentMailError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return AgentMailError

"""The errors services raise: what went wrong in the domain's words, with a documented
snake_case code. Every app may import this module; it knows nothing of HTTP. The API maps
each class to a status in one table (``assmbl.errors.DOMAIN_STATUS``); the admin and the
management commands show ``message``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A service refuses. ``code`` is the API's error code (docs/api.md), ``details`` what
    the client may act on."""

    code = "invalid_request"
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details
        super().__init__(self.message)


class Invalid(DomainError):
    """The input breaks a rule of the domain."""

    code = "validation_error"


class InvalidQuery(Invalid):
    """A search query (``q``) the grammar cannot read; ``details`` names the term."""

    code = "invalid_query"
    default_message = "The search query is invalid."


class NotFound(DomainError):
    """No such thing, or not one the caller may see."""

    code = "not_found"
    default_message = "No such resource."


class Conflict(DomainError):
    """The thing is in a state that does not allow this."""

    code = "conflict"
    default_message = "The resource is in a state that does not allow this."


class Gone(DomainError):
    """The thing existed and no longer does (expired)."""

    code = "gone"
    default_message = "The resource is no longer available."


class TooLarge(DomainError):
    """The input is larger than a limit."""

    code = "payload_too_large"
    default_message = "The request is too large."


class Unsupported(DomainError):
    """The input is of a kind this service does not handle (a media type)."""

    code = "unsupported_media_type"
    default_message = "This kind of content is not supported."


class TooMany(DomainError):
    """Too many of these, too fast; ``retry_after`` seconds until it may succeed."""

    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """Not ready yet (work under way elsewhere); ``retry_after`` seconds until it may be."""

    code = "unavailable"
    default_message = "Not available yet; retry shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

"""OpenAPI pieces every app's views share: the error envelope, the documented error
statuses, and the bearer security scheme of ``directory.auth.BearerTokenAuthentication``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="snake_case, documented per endpoint")
    message = serializers.CharField(help_text="a human sentence")
    details = serializers.JSONField(allow_null=True)


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()

    class Meta:
        ref_name = "Error"


_DESCRIPTIONS = {
    400: "Validation failed",
    401: "Missing, malformed or revoked token",
    403: "Wrong kind of token for this endpoint",
    404: "Not found, or not yours",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "State conflict",
    410: "Gone (an expired cursor)",
    411: "Content-Length required",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Rate limited (see Retry-After)",
    503: "Temporarily unavailable (see Retry-After)",
}

# Every authenticated endpoint can answer these, whatever it does (400: a value the
# database refuses, such as a NUL character in a path id, is invalid_value anywhere).
COMMON_ERRORS = (400, 401, 403, 405, 406, 429, 503)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The envelope under each status an endpoint documents, plus the common ones."""
    return {
        status: OpenApiResponse(response=ErrorEnvelopeSerializer, description=_DESCRIPTIONS.get(status, "Error"))
        for status in sorted({*statuses, *COMMON_ERRORS})
    }


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "directory.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An agent token (amk_...) or an operator token (amo_...).",
        }


__all__ = ["ErrorEnvelopeSerializer", "error_responses", "inline_serializer"]

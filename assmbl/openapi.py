"""OpenAPI pieces every app's views share: the error envelope, the documented error
statuses, and the bearer security scheme of ``directory.auth.BearerTokenAuthentication``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="snake_case, documented per endpoint")
    message = serializers.CharField(help_text="a human sentence")
    details = serializers.JSONField(help_text="an object, or null")


class ErrorEnvelopeSerializer(serializers.Serializer[Any]):
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


_BLANK = {"type": "string", "maxLength": 0}


class InputSerializerScheme(OpenApiSerializerExtension):
    """An ``assmbl.inputs.InputSerializer`` refuses unknown fields, so its schema says
    ``additionalProperties: false``; ``schema_extra`` adds what fields cannot say alone
    (``anyOf`` of required fields, say)."""

    target_class = "assmbl.inputs.InputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        if not self.target.__class__.__dict__.get("__doc__"):
            schema.pop("description", None)  # not the base class's docstring
        schema["additionalProperties"] = False
        for prop in schema.get("properties", {}).values():
            # spectacular adds "" as a oneOf branch next to a pattern that may refuse it;
            # ours accept it too, and "" matching both branches would fail a oneOf.
            if _BLANK in prop.get("oneOf", []):
                prop["anyOf"] = prop.pop("oneOf")
        schema.update(getattr(self.target, "schema_extra", {}))
        return schema


# OpenAPI links: where the id a response returns can be used next. They document the
# API's flows (create, then read or change what was created) and let a stateful test
# (schemathesis) chain real calls instead of guessing ids that never exist.
_MESSAGE_OPERATIONS = [
    "message_get",
    "message_raw",
    "message_labels_patch",
    "message_read_patch",
    "message_archive_patch",
    "message_reply",
    "message_forward",
    "message_delete",
]
# (operationId, status) -> (path parameter, where its value is, the operations that take it)
LINKS: dict[tuple[str, str], tuple[str, str, list[str]]] = {
    ("send", "202"): ("message_id", "$response.body#/MessageID", _MESSAGE_OPERATIONS),
    ("message_reply", "202"): ("message_id", "$response.body#/MessageID", _MESSAGE_OPERATIONS),
    ("message_forward", "202"): ("message_id", "$response.body#/MessageID", _MESSAGE_OPERATIONS),
    ("message_get", "200"): ("thread_id", "$response.body#/ThreadID", ["thread_get"]),
    ("attachment_create", "201"): ("attachment_id", "$response.body#/AttachmentID", ["attachment_get"]),
    ("directory_senders_create", "201"): ("entry_id", "$response.body#/id", ["directory_senders_delete"]),
    ("webhooks_create", "201"): (
        "endpoint_id",
        "$response.body#/id",
        [
            "webhooks_retrieve",
            "webhooks_update",
            "webhooks_deliveries",
            "webhooks_replay",
            "webhooks_rotate_secret",
            "webhooks_delete",
        ],
    ),
    ("drafts_create", "201"): (
        "draft_id",
        "$response.body#/DraftID",
        ["drafts_get", "drafts_update", "drafts_send", "drafts_delete"],
    ),
    ("agents_create", "201"): (
        "agent_id",
        "$response.body#/agent_id",
        ["agents_get", "agents_update", "agents_token_rotate", "agents_deactivate"],
    ),
}


def add_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the ``LINKS`` table as OpenAPI links; and a JSON
    body that must name one of several fields (``anyOf``/``oneOf``, as reply's body or
    html) is a required body: a request without one is refused like ``{}``."""
    components = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            component = components.get(body.get("$ref", "").rpartition("/")[2], {})
            if "anyOf" in component or "oneOf" in component:
                operation["requestBody"]["required"] = True
            for status, response in operation.get("responses", {}).items():
                link = LINKS.get((operation.get("operationId", ""), str(status)))
                if link is None:
                    continue
                parameter, expression, targets = link
                response["links"] = {
                    target: {"operationId": target, "parameters": {parameter: expression}} for target in targets
                }
    return result


__all__ = ["ErrorEnvelopeSerializer", "add_links", "error_responses", "inline_serializer"]

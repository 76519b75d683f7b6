"""The API's error envelope, ``{"error": {"code", "message", "details"}}`` (API.md), with
no dependencies: the gunicorn worker builds it before Django is set up, the WSGI layer
before Django sees the request, and assmbl.errors for everything after."""

from __future__ import annotations

from typing import Any

TOO_LARGE = "The request body is larger than the limit."


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}

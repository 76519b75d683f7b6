"""Helpers for the inbox API tests: deliver real MIME and find the indexed message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mail.models import Message
from tests.mime import build_mail


def receive(deliver: Callable[..., Any], persona: Any, **mail: Any) -> Message:
    """Send one real message through the pipeline to the persona; return its inbox row."""
    raw = build_mail(to=persona.address, **mail)
    accepted = deliver(raw, to=persona.address)
    return Message.objects.get(delivery=accepted.delivery, agent=persona.agent)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["MessageID"] for item in response.json()["items"]]


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])

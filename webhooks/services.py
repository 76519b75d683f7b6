"""Writes of the event log. ``event_record`` is the one seam every producer calls."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from directory.models import Agent
from webhooks.models import Event


def event_record(*, agent: Agent, type: str, payload: dict[str, Any]) -> Event:
    """Record an event in the caller's transaction; delivery happens after commit."""
    event = Event.objects.create(agent=agent, type=type, payload=payload)
    transaction.on_commit(lambda: _dispatch(event.seq))
    return event


def _dispatch(seq: int) -> None:
    """Fan the event out to webhook endpoints (built by the webhooks issue)."""

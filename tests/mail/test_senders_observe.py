"""senders_observe: a batch's senders are counted in one upsert (tests/mail/test_ingest_batch.py
counts the statements; tests/mail/test_senders_observe_postgres.py proves the lock order)."""

from __future__ import annotations

from typing import Any

import pytest

from directory.models import Sender
from mail import trust
from mail.models import Message
from mail.trust import senders_observe

pytestmark = pytest.mark.django_db


def _received(agent: Any, senders: list[str]) -> list[Message]:
    return [Message(agent=agent, direction=Message.Direction.INBOUND, sender=s, authentication={}) for s in senders]


def test_a_batch_with_more_senders_than_one_upsert_takes_counts_each_of_them(owner: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(trust, "_SENDERS_PER_UPSERT", 2)
    Sender.objects.create(agent=owner.agent, address="c@example.com", message_count=5, status="trusted")
    senders = ["e@example.com", "a@example.com", "c@example.com", "b@example.com", "a@example.com", "d@example.com"]

    senders_observe(messages=_received(owner.agent, senders))

    rows = Sender.objects.filter(agent=owner.agent).values_list("address", "message_count", "status")
    assert sorted(rows) == [
        ("a@example.com", 2, "unknown"),
        ("b@example.com", 1, "unknown"),
        ("c@example.com", 6, "trusted"),
        ("d@example.com", 1, "unknown"),
        ("e@example.com", 1, "unknown"),
    ]
    assert Sender.objects.filter(agent=owner.agent, last_seen_at__isnull=True).count() == 0

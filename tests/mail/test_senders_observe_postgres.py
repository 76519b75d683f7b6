"""PostgreSQL-only proof: ingest workers whose batches share senders never deadlock on the
batch's Sender rows (senders_observe takes them all in one fixed order, in one statement),
and every message is counted, whether the rows are new or already there."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import transaction

from directory.models import Agent, Sender
from mail.models import Message
from mail.trust import senders_observe
from tests.concurrency import run_concurrently
from tests.factories import AgentFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

ROUNDS = 8
SENDERS = 120


def _observe(agent: Agent, senders: list[str]) -> Callable[[], None]:
    """One worker's batch: a received message from each of ``senders``, in that order."""

    def work() -> None:
        messages = [
            Message(agent=agent, direction=Message.Direction.INBOUND, sender=s, authentication={}) for s in senders
        ]
        with transaction.atomic():
            senders_observe(messages=messages)

    return work


def _opposite_batches(first: list[str], second: list[str]) -> list[list[str]]:
    """Three batches' senders, in message order. One meets ``first`` once and ``second``
    twice, the others the other way round, one of them backwards: locks taken per distinct
    count, or in message order, cross between them."""
    forward = [*first, *second, *second]
    backward = [*second, *first, *first]
    return [forward, backward[::-1], backward]


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_over_the_same_new_senders_never_deadlock_and_count_every_message() -> None:
    agents = [AgentFactory(), AgentFactory()]
    for attempt in range(ROUNDS):
        senders = [f"s{i}-{attempt}@example.com" for i in range(SENDERS)]
        first, second = senders[: SENDERS // 2], senders[SENDERS // 2 :]

        batches = _opposite_batches(first, second)
        run_concurrently([_observe(agent, batch) for agent in agents for batch in batches])

        expected = Counter((agent.pk, s) for agent in agents for batch in batches for s in batch)
        rows = Sender.objects.filter(address__in=senders).values_list("agent_id", "address", "message_count")
        assert {(a, s): n for a, s, n in rows} == expected


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_over_the_same_known_senders_never_deadlock_and_count_every_message() -> None:
    agents = [AgentFactory(), AgentFactory()]
    senders = [f"known{i}@example.com" for i in range(SENDERS)]
    Sender.objects.bulk_create([Sender(agent=agent, address=s) for agent in agents for s in senders])
    first, second = senders[: SENDERS // 2], senders[SENDERS // 2 :]
    batches = _opposite_batches(first, second)
    for _ in range(ROUNDS):
        run_concurrently([_observe(agent, batch) for agent in agents for batch in batches])

    expected = Counter((agent.pk, s) for agent in agents for batch in batches for s in batch)
    rows = Sender.objects.values_list("agent_id", "address", "message_count")
    assert {(a, s): n for a, s, n in rows} == {key: ROUNDS * n for key, n in expected.items()}

"""The dispatcher's claim: concurrent dispatchers never take the same due delivery; a
delivery already queued is not queued again, however long its task waits; no more than
WEBHOOKS_MAX_IN_FLIGHT are queued at once. Tasks are really published here (on the
in-memory broker, not run in place), and a test runs one by taking it off the queue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from kombu.exceptions import OperationalError

from assmbl.celery import app as celery_app
from directory.models import Agent
from tests.webhooks.conftest import Receiver, Reply
from webhooks.models import Delivery, Event
from webhooks.services import deliveries_claim, endpoint_create, event_record
from webhooks.tasks import dispatch_due_deliveries, dispatch_event, send_delivery

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Queue:
    """The webhooks queue of a real (in-memory) broker."""

    channel: Any

    def __len__(self) -> int:
        return int(self.channel.queue_declare("webhooks", passive=True).message_count)

    def run_next(self) -> None:
        """What a worker does: take the next task off the queue and run it."""
        message = self.channel.basic_get("webhooks", no_ack=True)
        args, kwargs, _ = message.decode()
        celery_app.tasks[message.headers["task"]](*args, **kwargs)


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_declare("webhooks")
        channel.queue_purge("webhooks")
        yield Queue(channel)
        channel.queue_purge("webhooks")


def _owe(agent: Agent, url: str, count: int) -> list[Event]:
    """``count`` events owed to one endpoint; inside the test's transaction their on-commit
    kicks never run, so only the dispatcher under test queues them."""
    endpoint_create(account=agent.account, created_by=agent, url=url)
    return [event_record(agent=agent, type="message.received", payload={}) for _ in range(count)]


@pytest.mark.postgres
def test_concurrent_dispatchers_claim_disjoint_batches(
    transactional_db: Any, owner: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not settings.IS_POSTGRES:
        pytest.skip("row locks (skip_locked) are PostgreSQL-only")
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    # Autocommit runs on-commit kicks at once; here the rows must wait for the dispatchers.
    monkeypatch.setattr("webhooks.services._dispatch", lambda seq: None)
    endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/never")
    for _ in range(40):
        event_record(agent=owner.agent, type="message.received", payload={})
    claimed: list[list[str]] = []
    barrier = threading.Barrier(4)

    def dispatcher() -> None:
        barrier.wait()
        try:
            claimed.append(deliveries_claim(limit=15))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    every = [i for batch in claimed for i in batch]
    assert len(every) == len(set(every)) == 40
    assert Delivery.objects.count() == 40


def test_a_queued_delivery_is_not_queued_again_however_long_its_task_waits(
    owner: Any, loopback_allowed: None, queue: Queue, settings: Any
) -> None:
    lease = timedelta(seconds=settings.WEBHOOKS_QUEUE_LEASE_SECONDS)
    with time_machine.travel(T0, tick=False) as clock:
        _owe(owner.agent, "http://127.0.0.1:9/never", 3)
        assert dispatch_due_deliveries() == 3
        # A minute, then ten, behind a long queue: the tasks are still coming.
        for wait in (timedelta(minutes=1), timedelta(minutes=10), lease - timedelta(seconds=1)):
            clock.move_to(T0 + wait)
            assert dispatch_due_deliveries() == 0

    assert len(queue) == 3
    assert Delivery.objects.filter(queued_at=T0).count() == 3


def test_a_second_task_for_the_same_delivery_makes_no_second_attempt(
    owner: Any, receiver: Receiver, queue: Queue, settings: Any
) -> None:
    receiver.script = [Reply(500)] * 3
    with time_machine.travel(T0, tick=False) as clock:
        _owe(owner.agent, receiver.url(), 1)
        assert dispatch_due_deliveries() == 1
        # Taken for lost (a broker restart) once its lease lapses: queued a second time.
        clock.move_to(T0 + timedelta(seconds=settings.WEBHOOKS_QUEUE_LEASE_SECONDS + 1))
        assert dispatch_due_deliveries() == 1
        assert len(queue) == 2

        queue.run_next()
        queue.run_next()

    assert len(receiver.requests) == 1
    delivery = Delivery.objects.get()
    assert delivery.attempts == 1 and delivery.queued_at is None


def test_it_queues_no_more_than_max_in_flight(owner: Any, receiver: Receiver, queue: Queue, settings: Any) -> None:
    settings.WEBHOOKS_MAX_IN_FLIGHT = 5
    receiver.script = [Reply(500)] * 12
    events = _owe(owner.agent, receiver.url(), 12)

    assert dispatch_due_deliveries() == 5
    assert dispatch_due_deliveries() == 0
    # The immediate kick of a new event waits for room like the rest.
    assert dispatch_event(events[-1].seq) == 0
    assert len(queue) == 5

    queue.run_next()
    queue.run_next()
    assert dispatch_due_deliveries() == 2
    assert len(queue) == 5
    assert Delivery.objects.filter(queued_at__isnull=False).count() == 5
    assert len(receiver.requests) == 2


def test_a_delivery_whose_task_could_not_be_queued_is_queued_by_the_next_run(
    owner: Any, loopback_allowed: None, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    _owe(owner.agent, "http://127.0.0.1:9/never", 2)
    real_delay = send_delivery.delay

    def broker_down(*args: Any) -> None:
        raise OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr(send_delivery, "delay", broker_down)
    with pytest.raises(OperationalError):
        dispatch_due_deliveries()
    assert not Delivery.objects.filter(queued_at__isnull=False).exists()

    monkeypatch.setattr(send_delivery, "delay", real_delay)
    assert dispatch_due_deliveries() == 2
    assert len(queue) == 2

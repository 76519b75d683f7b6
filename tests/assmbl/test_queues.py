"""Each class of work has its own queue (CELERY_TASK_ROUTES) and, in both topologies of
``manage.py serve``, its own workers: no worker that indexes mail also makes webhook attempts
or extracts content, and the content worker runs at a lower CPU priority."""

from __future__ import annotations

from typing import Any

import pytest

from assmbl.celery import app, worker_nice_increment
from assmbl.management.commands.serve import async_commit, embedded_processes, stack_processes


def _queue_of(task: str) -> str:
    return str(app.amqp.router.route({}, task, (), {})["queue"].name)


def _consumers(commands: dict[str, list[str]]) -> dict[str, set[str]]:
    """Worker name -> the queues it consumes."""
    return {
        name: set(command[command.index("--queues") + 1].split(","))
        for name, command in commands.items()
        if "worker" in command
    }


def test_each_task_goes_to_the_queue_of_its_class() -> None:
    app.loader.import_default_modules()
    assert _queue_of("mail.tasks.process_deliveries") == "ingest"
    assert _queue_of("mail.tasks.sweep_stored_deliveries") == "ingest"
    assert _queue_of("mail.tasks.send_message") == "send"
    assert _queue_of("mail.tasks.sweep_queued_messages") == "send"
    for task in ("send_delivery", "dispatch_event", "dispatch_due_deliveries", "prune_events"):
        assert _queue_of(f"webhooks.tasks.{task}") == "webhooks"
    assert _queue_of("mail.tasks.extract_content") == "content"
    assert _queue_of("mail.tasks.convert_attachment_text") == "content"
    assert _queue_of("mail.tasks.run_archive_job") == "celery"
    routed = {_queue_of(name) for name in app.tasks if not name.startswith("celery.")}
    assert routed <= set(app.amqp.queues)


TOPOLOGIES = [
    pytest.param(embedded_processes(8001, 2526, 1, 2), id="embedded"),
    pytest.param(
        stack_processes(
            http_port=8001, smtp_port=2526, web_workers=1, web_threads=1, celery_workers=2, celery_concurrency=2
        ),
        id="stack",
    ),
]


@pytest.mark.parametrize("commands", TOPOLOGIES)
def test_ingest_and_webhooks_have_workers_of_their_own_and_every_queue_has_one(commands: dict[str, list[str]]) -> None:
    consumers = _consumers(commands)

    assert set().union(*consumers.values()) == set(app.amqp.queues)
    for queues in consumers.values():
        assert not ({"ingest", "webhooks"} <= queues)
        assert queues == {"webhooks"} or "webhooks" not in queues


@pytest.mark.parametrize("commands", TOPOLOGIES)
def test_content_has_a_worker_of_its_own_that_yields_the_cpu_to_indexing(
    commands: dict[str, list[str]], settings: Any
) -> None:
    settings.CONTENT_WORKER_NICE = 10
    consumers = _consumers(commands)

    content = [name for name, queues in consumers.items() if "content" in queues]
    assert len(content) == 1
    assert consumers[content[0]] == {"content"}
    assert worker_nice_increment(consumers[content[0]]) == 10
    for name, queues in consumers.items():
        if name not in content:
            assert worker_nice_increment(queues) == 0, name


def test_the_stack_s_ingest_and_content_workers_commit_without_waiting_for_the_flush_and_send_does_not() -> None:
    commands = stack_processes(
        http_port=8001, smtp_port=2526, web_workers=1, web_threads=1, celery_workers=2, celery_concurrency=2
    )

    assert {name for name in commands if async_commit(name)} == {"worker1", "worker2", "content"}

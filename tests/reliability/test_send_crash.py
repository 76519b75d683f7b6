"""Item 4: the sending worker dies after the provider accepted a message and before the
acceptance was recorded (20 runs). The client then replays its Idempotency-Key, and the
task runs again as a redelivery would: the provider still saw exactly one copy each."""

from __future__ import annotations

import email
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from assmbl.celery import app as celery_app
from assmbl.faults import FAULT_EXIT_CODE
from mail.dispatch import message_dispatch
from mail.models import Message
from tests.conftest import free_port
from tests.reliability.procs import ROOT, child_env

RUNS = 20


class _Sink:
    """The provider: an SMTP server that records what it accepted."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        key = email.message_from_bytes(envelope.original_content).get("X-AgentMail-Idempotency-Key", "")
        with self.lock:
            self.keys.append(key)
        return "250 OK"


@pytest.fixture
def provider() -> Any:
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, f"smtp://127.0.0.1:{port}"
    controller.stop()


def test_a_worker_killed_after_the_provider_accepted_never_sends_twice(
    transactional_db: Any, owner: Any, provider: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, relay_url = provider
    # Queue sends instead of running them in the request: a separate process sends them.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setitem(celery_app.conf, "broker_url", "memory://")
    data_dir = Path(settings.STORAGES["default"]["OPTIONS"]["location"]).parent
    env = child_env(
        data_dir, MAIL_OUTBOUND="smtp", OUTBOUND_SMTP_URL=relay_url, ASSMBL_FAULTS="send.after_provider_accept"
    )
    settings.EMAIL_BACKEND = "mail.backends.RelayEmailBackend"
    settings.OUTBOUND_SMTP_URL = relay_url

    for i in range(RUNS):
        body = {"to": "someone@example.com", "subject": f"order {i}", "body": "confirmed"}
        headers = {"HTTP_IDEMPOTENCY_KEY": f"order-{i}"}
        first = owner.client.post("/v1/send", body, format="json", **headers)
        assert first.status_code == 202, first.content
        message_id = first.json()["MessageID"]

        worker = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                f"from mail.dispatch import message_dispatch; message_dispatch(message_id={message_id!r})",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert worker.returncode == FAULT_EXIT_CODE, worker.stderr.decode()[-2000:]

        replay = owner.client.post("/v1/send", body, format="json", **headers)
        assert replay.status_code == 202
        assert replay.json()["MessageID"] == message_id
        assert replay["Idempotent-Replayed"] == "true"
        message_dispatch(message_id=message_id)  # the task, redelivered after the crash

    assert sorted(sink.keys) == sorted(f"order-{i}" for i in range(RUNS))
    assert Message.objects.filter(agent=owner.agent, direction="outbound").count() == RUNS

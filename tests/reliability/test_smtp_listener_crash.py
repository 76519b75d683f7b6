"""Item 2: the SMTP listener dies after the durable store but before its 250 reply.

The client sees the connection drop, so (RFC 5321) it must retry; the retry reaches a
restarted listener and the message is stored exactly once.
"""

from __future__ import annotations

import smtplib
import time
from pathlib import Path
from typing import Any

from mail.models import InboundDelivery, Message
from mail.rawstore import LocalRawStore
from tests.conftest import free_port
from tests.mime import build_mail
from tests.reliability.procs import child_env, start_smtpd, stop

RUNS = 50


def test_a_listener_killed_before_250_loses_and_duplicates_nothing(
    transactional_db: Any, tmp_path: Path, owner: Any
) -> None:
    healthy_port = free_port()
    healthy = start_smtpd(healthy_port, child_env(tmp_path))
    mails = [build_mail(to=owner.address, subject=f"crash run {i}") for i in range(RUNS)]
    crashes = 0
    try:
        for raw in mails:
            port = free_port()
            doomed = start_smtpd(port, child_env(tmp_path, ASSMBL_FAULTS="ingest.after_accept"))
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("alice@example.com", [owner.address], raw)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                crashes += 1
            finally:
                stop(doomed)
            # The client's retry, to the listener that is still up.
            with smtplib.SMTP("127.0.0.1", healthy_port, timeout=10) as client:
                assert client.sendmail("alice@example.com", [owner.address], raw) == {}
        # The healthy listener keeps running in production: let it finish what it queued
        # (processing runs after the 250, as a task) before this test kills it.
        deadline = time.monotonic() + 30
        while InboundDelivery.objects.exclude(status="processed").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop(healthy)

    assert crashes == RUNS, "every first attempt should have died before its 250"
    assert InboundDelivery.objects.count() == RUNS
    assert Message.objects.filter(agent=owner.agent).count() == RUNS
    subjects = sorted(Message.objects.values_list("subject", flat=True))
    assert subjects == sorted(f"crash run {i}" for i in range(RUNS))
    store = LocalRawStore(tmp_path / "mail", tmp_path / "archive")  # the listeners' storage
    for message in Message.objects.all():
        with store.open(message.storage_key) as stored:
            assert stored.read() in mails

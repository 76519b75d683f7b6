"""Scheduled sends under crashes: 200 messages scheduled, made due at once, released by the
real beat and sent by the real Celery worker (Redis broker, PostgreSQL, an SMTP relay that
records what it accepted) while the worker is SIGKILLed ten times, each time 0.5 to 2.5 s
after its first send.

Each message must reach the relay exactly once. The release claims ``scheduled → queued``
by a conditional update and commits before queueing, the send claims by another, a dead
worker's unacknowledged tasks come back (acks_late, a 10 s visibility timeout) and find
their claims taken, the sweep re-queues queued messages whose task was lost, and a claim
left by a worker killed before its handoff is released after SEND_CLAIM_TIMEOUT_SECONDS
(60 s here) and the message sent.

A message whose worker is killed *during* the handoff (from MAIL FROM until the relay's
answer is recorded; connecting, EHLO and the QUIT after the record are outside it) is in
doubt: the relay may or may not have it, and sending again could duplicate it. Dispatch
never sends it again (mail.dispatch; the sweep marks it failed, in doubt, after the claim
timeout); the test counts those separately and requires that none reached the relay twice.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from mail.models import Message
from mail.sending import Outgoing, message_send
from tests.conftest import free_port
from tests.reliability.procs import CELERY, celery_worker, child_env
from tests.reliability.test_crash_ingest import _kill, _redis_start, _spawn

MESSAGES = int(os.environ.get("CRASH_SCHEDULED_MESSAGES", "200"))
KILLS = 10
CALM_SECONDS = 300

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


class _Relay:
    """The provider: an SMTP server that records the Message-ID of every mail it accepted."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = email.message_from_bytes(envelope.original_content).get("Message-ID", "")
        with self.lock:
            self.accepted[message_id] += 1
        return "250 OK"


def _sent() -> int:
    return Message.objects.filter(status=Message.Status.SENT).count()


def _pending() -> int:
    """Messages not yet handed over: scheduled, or queued and not in a handoff (unclaimed,
    or claimed by a worker that may have died before the handoff)."""
    return (
        Message.objects.filter(status=Message.Status.SCHEDULED).count()
        + Message.objects.filter(status=Message.Status.QUEUED)
        .exclude(provider_message_id__startswith="handoff:")
        .count()
    )


def test_200_scheduled_sends_due_at_once_go_out_once_while_workers_die(
    transactional_db: Any, tmp_path: Path, owner: Any, settings: Any
) -> None:
    if not settings.IS_POSTGRES:
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite serialises the workers")
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    relay = _Relay()
    relay_port = int(os.environ.get("CRASH_RELAY_PORT") or free_port())
    controller = Controller(relay, hostname="127.0.0.1", port=relay_port)
    controller.start()
    redis_port = int(os.environ.get("CRASH_REDIS_PORT") or free_port())
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    # The workers read the raw MIME this process stored: the same data directory.
    data_dir = Path(settings.STORAGES["default"]["OPTIONS"]["location"]).parent
    env = child_env(
        data_dir,
        DJANGO_SETTINGS_MODULE="tests.reliability.crash_settings",
        CELERY_TASK_ALWAYS_EAGER="0",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
        CRASH_VISIBILITY_TIMEOUT="10",
        MAIL_OUTBOUND="smtp",
        OUTBOUND_SMTP_URL=f"smtp://127.0.0.1:{relay_port}",
        SCHEDULED_RELEASE_SECONDS="1",
        SEND_SWEEP_AFTER_SECONDS="20",
        SEND_CLAIM_TIMEOUT_SECONDS="60",
        DB_CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    worker_args = celery_worker("-Q", "celery,send,content", "-n", "sched@%h")
    beat_args = [*CELERY, "beat", "--loglevel=WARNING", "--schedule", str(tmp_path / "beat-schedule")]

    later = timezone.now() + dt.timedelta(hours=1)
    ids = [
        message_send(
            agent=owner.agent, outgoing=Outgoing(to=[f"r{i}@example.com"], subject=f"due {i}", body="b"), send_at=later
        ).internet_message_id
        for i in range(MESSAGES)
    ]
    redis = _redis_start(redis_port, redis_dir)
    worker = _spawn(worker_args, env, logs / "worker.log")
    beat = _spawn(beat_args, env, logs / "beat.log")
    started = time.monotonic()
    kills = 0
    try:
        # All due at once.
        Message.objects.filter(status=Message.Status.SCHEDULED).update(send_at=timezone.now())
        # The storm: each new worker is killed a moment (0.5 to 2.5 s) after it sent its first
        # message (a worker takes seconds to boot), so every kill lands while sends are in flight.
        sent_at_kills: list[int] = []
        rng = random.Random(26)
        while kills < KILLS and _pending():
            base, boot = _sent(), time.monotonic()
            while _sent() == base and time.monotonic() - boot < 30:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.5, 2.5))
            _kill(worker)
            kills += 1
            sent_at_kills.append(_sent())
            worker = _spawn(worker_args, env, logs / "worker.log")
        # Calm: the last worker stays up until nothing is left to hand over and the count of
        # sent messages has not moved for 15 s (a dead worker's tasks come back after 10 s).
        calm, sent, moved_at = time.monotonic(), -1, time.monotonic()
        while time.monotonic() - calm < CALM_SECONDS:
            now_sent = _sent()
            if now_sent != sent:
                sent, moved_at = now_sent, time.monotonic()
            if not _pending() and time.monotonic() - moved_at > 15:
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
    finally:
        for proc in (worker, beat, redis):
            _kill(proc)
        controller.stop()

    statuses = Counter(Message.objects.outbound().values_list("status", flat=True))
    # In doubt: a handoff still open, or one the sweep already marked failed (after 60 s here).
    in_doubt = list(
        Message.objects.filter(status=Message.Status.QUEUED, provider_message_id__startswith="handoff:").values_list(
            "internet_message_id", flat=True
        )
    ) + list(
        Message.objects.filter(status=Message.Status.FAILED, status_detail__startswith="in doubt").values_list(
            "internet_message_id", flat=True
        )
    )
    reached_relay = sum(1 for mid in in_doubt if relay.accepted[mid])
    twice = {mid: n for mid, n in relay.accepted.items() if n > 1}
    sent_once = [mid for mid in ids if relay.accepted[mid] == 1]
    print(
        f"\n{MESSAGES} scheduled, {kills} worker kills, {elapsed:.0f} s: relay accepted {sum(relay.accepted.values())}"
        f" ({len(sent_once)} once, {len(twice)} twice), statuses {dict(statuses)}, in doubt {len(in_doubt)} ({reached_relay} of them reached the relay);"
        f" sent when each kill came: {sent_at_kills}"
    )
    assert any(0 < n < MESSAGES for n in sent_at_kills), "no kill landed while messages were going out"
    assert twice == {}
    assert set(relay.accepted) <= set(ids)
    assert _pending() == 0
    # Every message is sent exactly once, or is in doubt (its worker died mid-handoff) and
    # then reached the relay at most once; a kill leaves at most one message in doubt per
    # worker process (--concurrency=2).
    assert statuses[Message.Status.SENT] + len(in_doubt) == MESSAGES
    assert len(in_doubt) <= 2 * kills
    assert all(relay.accepted[mid] == 1 for mid in ids if mid not in in_doubt)

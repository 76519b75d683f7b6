"""The scale-out topology for real: a Celery worker process consuming a Redis queue.

The SMTP listener and the worker run as separate processes (as in ``make run-stack``) on
the test database, which both share (a SQLite file or the PostgreSQL test database). A
mail sent over SMTP is stored and queued on Redis by the listener, then indexed by the
worker; nothing here runs a task eagerly.
"""

from __future__ import annotations

import os
import random
import shutil
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from mail.models import InboundDelivery, Message
from tests.conftest import Persona, free_port
from tests.mime import build_mail

ROOT = Path(settings.BASE_DIR)
pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("TEST_REDIS_URL"),
    reason="redis-server is not installed (apt-get install -y redis-server; .ci/run does it)",
)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """TEST_REDIS_URL when `make test` started one, else a throwaway server of our own; a
    random database number keeps this run's queue apart from any other on the same server."""
    shared = os.environ.get("TEST_REDIS_URL", "").strip()
    db = random.randint(2, 15)
    if shared:
        yield f"{shared.rsplit('/', 1)[0]}/{db}"
        return
    folder = tmp_path / "redis"
    out = subprocess.run(
        [str(ROOT / "scripts" / "redis.sh"), "start", str(folder), str(free_port())],
        check=True,
        capture_output=True,
        text=True,
    )
    try:
        yield f"{out.stdout.strip().rsplit('/', 1)[0]}/{db}"
    finally:
        subprocess.run([str(ROOT / "scripts" / "redis.sh"), "stop", str(folder)], check=False)


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _process_env(redis: str) -> dict[str, str]:
    # The test process keeps raw mail in the location below; the children must use the same.
    data_dir = Path(settings.STORAGES["default"]["OPTIONS"]["location"]).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATA_DIR=str(data_dir),
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=redis,
        CELERY_TASK_ALWAYS_EAGER="0",
        MAIL_DOMAIN=settings.MAIL_DOMAIN,
        MAIL_STORAGE="file",
        DEBUG="1",
        LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def stack(transactional_db: Any, redis_url: str, tmp_path: Path) -> Iterator[int]:
    """A `manage.py smtpd` listener and a `celery -A assmbl worker`, both on Redis."""
    env = _process_env(redis_url)
    port = free_port()
    bindir = Path(sys.executable).parent
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("smtpd", "worker")}
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "smtpd", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=logs["smtpd"],
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                str(bindir / "celery"),
                "-A",
                "assmbl",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                    client.noop()
                break
            except OSError:
                assert all(p.poll() is None for p in procs), (tmp_path / "smtpd.log").read_text()
                time.sleep(0.2)
        yield port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()


def test_it_indexes_smtp_mail_through_a_celery_worker_on_redis(owner: Persona, stack: int, tmp_path: Path) -> None:
    raw = build_mail(to=owner.address, subject="Queued on Redis", body="Processed by a real worker.")
    with smtplib.SMTP("127.0.0.1", stack, timeout=10) as client:
        client.sendmail("alice@example.com", [owner.address], raw)

    # Accepted and queued by the listener process, not processed by it.
    delivery = InboundDelivery.objects.get()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Message.objects.for_agent(owner.agent).exists():
        time.sleep(0.2)

    message = Message.objects.for_agent(owner.agent).get()
    assert message.subject == "Queued on Redis"
    assert message.delivery_id == delivery.pk
    delivery.refresh_from_db()
    assert delivery.status == InboundDelivery.Status.PROCESSED
    # The worker's log names the task it received from Redis: proof it did the work.
    assert "mail.tasks.process_deliveries" in (tmp_path / "worker.log").read_text()

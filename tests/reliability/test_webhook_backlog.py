"""New mail is indexed while 1,000 failing webhook deliveries are in flight.

The service's own worker topology (the process definitions of ``manage.py serve``, without the
web server) runs on a real broker: Redis, as ``make run-stack`` does, and kombu's filesystem
transport, as ``make run`` does. A loopback receiver answers every delivery 500 after
``RECEIVER_DELAY``. 1,000 deliveries are owed to it; the children's beat dispatcher puts them
all in flight (``WEBHOOKS_MAX_IN_FLIGHT`` is raised to 1,000 for this), and then one mail sent
over SMTP must be indexed within 10 s. On one shared queue it waits behind the webhook tasks.

``BACKLOG_OBSERVE_SECONDS`` (default 0) keeps sampling the broker's queues that much longer
after the mail is indexed, to watch the backlog drain and the failed attempts come back.
"""

from __future__ import annotations

import os
import random
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from django.utils import timezone

from assmbl.management.commands.serve import embedded_processes, stack_processes
from mail.models import Message
from tests.conftest import Persona, free_port
from tests.mime import build_mail
from tests.reliability.procs import ROOT, child_env, wait_for_port
from webhooks.models import Delivery, Endpoint, Event

pytestmark = [pytest.mark.slow]

BACKLOG = 1000
RECEIVER_DELAY = 0.5
INDEX_WITHIN = 10.0
# Beyond the deliveries themselves the webhook queue holds beat's dispatcher ticks and the
# kick of the test mail's own event; anything past this is work queued twice.
TICK_SLACK = 40


class FailingReceiver:
    """A webhook receiver on 127.0.0.1 that is down: every POST waits, then gets a 500."""

    def __init__(self) -> None:
        self.hits = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    receiver.hits += 1
                time.sleep(RECEIVER_DELAY)
                try:
                    self.send_response(500)
                    self.send_header("content-length", "4")
                    self.end_headers()
                    self.wfile.write(b"down")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@dataclass
class Broker:
    name: str
    url: str
    queued: Callable[[], int]  # tasks waiting in every queue of the broker


def _redis_broker() -> Iterator[Broker]:
    shared = os.environ.get("TEST_REDIS_URL", "").strip()
    if not shared:
        pytest.skip("TEST_REDIS_URL is not set (make test starts a Redis; scripts/redis.sh start DIR PORT)")
    url = f"{shared.rsplit('/', 1)[0]}/{random.randint(2, 15)}"
    client = redis.Redis.from_url(url)
    client.flushdb()

    def queued() -> int:
        # kombu keeps each queue as a list named after it (bindings are sets, unacked a hash).
        return sum(client.llen(key) for key in client.scan_iter() if client.type(key) == b"list")

    try:
        yield Broker("redis", url, queued)
    finally:
        client.flushdb()
        client.close()


def _filesystem_broker(data_dir: Path) -> Iterator[Broker]:
    folder = data_dir / "broker" / "queue"  # where settings put it for filesystem:// under DATA_DIR

    def queued() -> int:
        try:
            return sum(1 for name in os.listdir(folder) if name.endswith(".msg"))
        except FileNotFoundError:
            return 0

    yield Broker("filesystem", "filesystem://", queued)


@pytest.fixture(params=["redis", "filesystem"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    if request.param == "redis":
        yield from _redis_broker()
    else:
        yield from _filesystem_broker(tmp_path / "data")


def _topology(broker: Broker, smtp_port: int) -> dict[str, list[str]]:
    """Every Celery and SMTP process ``make run`` (filesystem) or ``make run-stack`` (Redis)
    starts, at their smallest sizes; the web server plays no part here."""
    if broker.name == "filesystem":
        commands = embedded_processes(http_port=free_port(), smtp_port=smtp_port, web_workers=1, celery_concurrency=2)
    else:
        commands = stack_processes(
            http_port=free_port(),
            smtp_port=smtp_port,
            web_workers=1,
            web_threads=1,
            celery_workers=1,
            celery_concurrency=2,
        )
    commands.pop("web")
    return commands


def _owe_deliveries(endpoint: Endpoint, agent: Any, count: int) -> None:
    """The rows ``events_record`` writes for ``count`` events, written directly so that no
    on-commit kick runs here: the children's dispatcher must put them in flight itself."""
    events = Event.objects.bulk_create(
        [
            Event(agent=agent, type=Event.Type.MESSAGE_RECEIVED, payload={"MessageID": f"msg_backlog_{i}"})
            for i in range(count)
        ]
    )
    now = timezone.now()
    Delivery.objects.bulk_create(
        [Delivery(event=e, endpoint=endpoint, webhook_id=e.id, next_attempt_at=now) for e in events]
    )


def _stop(procs: dict[str, subprocess.Popen[Any]]) -> None:
    # SIGTERM to the leader only (Celery's warm shutdown stops its own children), then the
    # whole group if it lingers.
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_new_mail_is_indexed_within_10_s_while_1000_failing_webhook_deliveries_are_in_flight(
    transactional_db: Any, owner: Persona, broker: Broker, tmp_path: Path, settings: Any
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    settings.DATA_DIR = data_dir  # serve.py puts beat's schedule file there
    receiver = FailingReceiver()
    endpoint = Endpoint.objects.create(
        account=owner.agent.account, created_by=owner.agent, url=receiver.url, secret="whsec_" + "A" * 32
    )
    endpoint.agents.set([owner.agent])
    env = child_env(
        data_dir,
        CELERY_TASK_ALWAYS_EAGER="0",
        CELERY_BROKER_URL=broker.url,
        MAIL_DOMAIN=settings.MAIL_DOMAIN,
        MAIL_STORAGE="file",
        LOG_LEVEL="WARNING",
        TRUST_DNS_RESOLVER="mail.authn.dns_offline",
        WEBHOOKS_ALLOW_LOOPBACK="1",
        WEBHOOKS_DISPATCH_BATCH=str(BACKLOG),
        WEBHOOKS_MAX_IN_FLIGHT=str(BACKLOG),
    )
    smtp_port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = {
        name: subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=open(logs / f"{name}.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        for name, command in _topology(broker, smtp_port).items()
    }
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.5):
            samples.append((time.monotonic() - started, broker.queued()))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        wait_for_port(smtp_port, procs["smtp"], timeout=60)
        sampler.start()
        _owe_deliveries(endpoint, owner.agent, BACKLOG)

        # In flight: every delivery is queued on the broker or already being attempted.
        deadline = time.monotonic() + 90
        while broker.queued() + receiver.hits < BACKLOG:
            assert time.monotonic() < deadline, f"the dispatcher did not put the backlog in flight: {samples[-5:]}"
            assert all(p.poll() is None for p in procs.values()), {n: p.returncode for n, p in procs.items()}
            time.sleep(0.1)
        queued_at_send = broker.queued()

        raw = build_mail(to=owner.address, subject="Behind the webhooks", body="Must not wait for them.")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("alice@example.com", [owner.address], raw)
        accepted = time.monotonic()
        indexed = None
        while time.monotonic() - accepted < 30:
            if Message.objects.for_agent(owner.agent).filter(subject="Behind the webhooks").exists():
                indexed = time.monotonic() - accepted
                break
            time.sleep(0.05)
        time.sleep(float(os.environ.get("BACKLOG_OBSERVE_SECONDS", "0")))
    finally:
        sampling.set()
        _stop(procs)
        receiver.server.shutdown()
        receiver.server.server_close()

    peak = max(n for _, n in samples)
    series = " ".join(f"{t:.0f}s:{n}" for t, n in samples[::4])
    print(
        f"\n[{broker.name}] queued when the mail was sent: {queued_at_send}; indexed after "
        f"{indexed if indexed is None else round(indexed, 2)} s; receiver hits {receiver.hits}; "
        f"queue peak {peak}; queue over time: {series}"
    )
    assert indexed is not None and indexed <= INDEX_WITHIN, (
        f"indexed after {indexed} s with {queued_at_send} tasks queued; queue over time: {series}"
    )
    assert peak <= BACKLOG + TICK_SLACK, f"work was queued twice: peak {peak}; queue over time: {series}"

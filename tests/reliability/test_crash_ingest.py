"""Item 1: 1,000 inbound mails (SMTP and signed SNS notifications) while the Celery worker
is SIGKILLed every ~2 s, PostgreSQL is restarted once and Redis once.

Every process is the service's own, started here and killed by its pid: the SMTP listener,
gunicorn (SNS webhook and API), one prefork Celery worker, later beat. Senders retry like
real ones (SMTP 4xx or a dropped connection, HTTP 5xx). Afterwards: 1,000 index rows, 1,000
raw objects, nothing lost or duplicated, every ``message.received`` delivered to a webhook
receiver, and the API said 503 with the envelope (never 500) while the database was down.
"""

from __future__ import annotations

import email
import json
import os
import random
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from mail import packs
from mail.models import InboundDelivery, Message
from tests.aws.sns_signing import TOPIC, Signer, ses_notification, sns_notification
from tests.conftest import free_port
from tests.mime import build_mail
from tests.reliability.procs import CELERY, ROOT, celery_worker, child_env, gunicorn_wsgi, stop, wait_for_port
from webhooks.models import Event
from webhooks.services import endpoint_create

SMTP_MAILS = int(os.environ.get("CRASH_SMTP_MAILS", "700"))
SNS_MAILS = int(os.environ.get("CRASH_SNS_MAILS", "300"))
SNS_RESENT = SNS_MAILS // 7  # notifications SNS delivers twice (at-least-once)
MIN_KILLS = 20
KILL_EVERY = 2.0
SETTLE_SECONDS = float(os.environ.get("CRASH_SETTLE_SECONDS", "240"))
# Senders spread their mails over this long, so PostgreSQL and Redis go down mid-traffic.
SEND_SECONDS = float(os.environ.get("CRASH_SEND_SECONDS", "40"))
FIGURES_FILE = os.environ.get("CRASH_FIGURES_FILE", "")

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.api_statuses: Counter[int] = Counter()
        self.api_bad: list[str] = []
        self.refusals: list[str] = []

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n


# --- Processes -----------------------------------------------------------------------------------


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
    # Its own session, so a SIGKILL reaches the prefork children too (as a container kill).
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _redis_start(port: int, data: Path) -> subprocess.Popen[Any]:
    # No persistence: a restart loses every queued task, the worst case the sweeper covers.
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port, proc)
    return proc


def _pg_ctl(*args: str) -> None:
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    cmd = [str(bindir / "pg_ctl"), *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def _pg_data_dir() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('data_directory')")
        return str(cursor.fetchone()[0])


# --- Traffic -------------------------------------------------------------------------------------


def _paced(items: list[Any]) -> Any:
    start, gap = time.monotonic(), SEND_SECONDS / max(len(items), 1)
    for i, item in enumerate(items):
        time.sleep(max(0.0, start + i * gap - time.monotonic()))
        yield item


def _smtp_sender(port: int, to: str, mails: list[bytes], stats: Stats) -> None:
    for raw in _paced(mails):
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
                    client.sendmail("alice@example.com", [to], raw)
                stats.add("smtp_sent")
                break
            except smtplib.SMTPRecipientsRefused as exc:
                if not all(400 <= code < 500 for code, _ in exc.recipients.values()):
                    stats.refusals.append(repr(exc.recipients)[:300])  # a real sender bounces it
                    break
            except smtplib.SMTPResponseException as exc:
                if not 400 <= exc.smtp_code < 500:
                    stats.refusals.append(f"{exc.smtp_code} {exc.smtp_error[:300]!r}")
                    break
            except (smtplib.SMTPServerDisconnected, OSError):
                pass
            stats.add("smtp_retries")
            time.sleep(0.2)


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _sns_sender(url: str, notifications: list[dict[str, Any]], stats: Stats) -> None:
    for message in _paced(notifications):
        body = json.dumps(message).encode()
        headers = {
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": message["TopicArn"],
        }
        while True:
            try:
                status = _http_post(url, body, headers)
            except OSError:
                status = 0
            if 200 <= status < 300:
                stats.add("sns_posted")
                break
            if 400 <= status < 500:
                stats.refusals.append(f"SNS {status}")
                break
            stats.add("sns_retries")  # SNS retries 5xx and timeouts
            time.sleep(0.2)


def _api_poller(base: str, token: str, stats: Stats, stop_event: threading.Event) -> None:
    while not stop_event.is_set():
        request = urllib.request.Request(f"{base}/v1/inbox?limit=1", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = int(response.status), b""
        except urllib.error.HTTPError as exc:
            status, body = int(exc.code), exc.read()
        except OSError:
            status, body = 0, b""
        with stats.lock:
            stats.api_statuses[status] += 1
            if status == 503:
                error = json.loads(body).get("error", {})
                if error.get("code") != "service_unavailable" or not {"message", "details"} <= set(error):
                    stats.api_bad.append(body.decode()[:300])
            elif status not in (200, 0):
                stats.api_bad.append(f"{status}: {body.decode()[:300]}")
        time.sleep(0.05)


class _Receiver(BaseHTTPRequestHandler):
    seen: Counter[str]
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if body.get("type") == "message.received":
            with self.lock:
                self.seen[body["data"]["MessageID"]] += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


# --- The test ------------------------------------------------------------------------------------


def _stored(root: Path, key: str) -> bool:
    """The object is in the mail storage: a file, or a live record of a pack (mail.packs)."""
    if packs.is_pack_key(key):
        pack, offset, length = packs.split_key(key)
        return packs.record_live(str(root / pack), offset, length)
    return (root / key).is_file()


def test_no_mail_is_lost_or_duplicated_while_workers_databases_and_brokers_crash(
    transactional_db: Any, tmp_path: Path, owner: Any, settings: Any
) -> None:
    if not settings.IS_POSTGRES:
        pytest.skip("needs PostgreSQL (DATABASE_URL): the database is restarted mid-run")
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server (apt-get install -y redis-server)")
    started = time.monotonic()
    stats = Stats()

    # The webhook receiver, registered for the agent.
    _Receiver.seen = Counter()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    endpoint_create(
        account=owner.agent.account,
        created_by=owner.agent,
        url=f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        event_types=["message.received"],
    )

    signer = Signer.create()
    pem = tmp_path / "sns.pem"
    pem.write_bytes(signer.pem)
    redis_port = free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = child_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="tests.reliability.crash_settings",
        CELERY_TASK_ALWAYS_EAGER="0",
        CELERY_BROKER_URL=broker,
        CELERY_VISIBILITY_TIMEOUT="60",
        CRASH_VISIBILITY_TIMEOUT="10",
        DELIVERY_SWEEP_AFTER_SECONDS="20",
        WEBHOOKS_ALLOW_LOOPBACK="1",
        SES_SNS_FETCHER="tests.reliability.sns_fetcher.fetch",
        SNS_TEST_CERT_PEM=str(pem),
        SES_SNS_TOPIC_ARNS=TOPIC,
        DB_CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    smtp_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    worker_args = celery_worker("-n", "crash@%h")

    redis = _redis_start(redis_port, redis_dir)
    smtpd = _spawn(
        [sys.executable, "manage.py", "smtpd", "--host", "127.0.0.1", "--port", str(smtp_port)], env, logs / "smtpd.log"
    )
    web = _spawn(gunicorn_wsgi(http_port, "--timeout", "60"), env, logs / "gunicorn.log")
    worker = _spawn(worker_args, env, logs / "worker.log")
    beat: subprocess.Popen[Any] | None = None
    procs = {"smtpd": smtpd, "web": web}
    try:
        wait_for_port(smtp_port, smtpd, timeout=60)
        wait_for_port(http_port, web, timeout=60)

        # 1,000 unique mails: SMTP ones in client threads, SNS ones (some twice) in others.
        smtp_mails = [
            build_mail(to=owner.address, subject=f"smtp {i}", body=f"crash body {i}") for i in range(SMTP_MAILS)
        ]
        sns_mails = [
            build_mail(to=owner.address, subject=f"sns {i}", body=f"crash body sns {i}") for i in range(SNS_MAILS)
        ]
        notifications = [
            signer.sign(
                sns_notification(ses_notification(message_id=f"crash-{i}", recipients=[owner.address], content=raw))
            )
            for i, raw in enumerate(sns_mails)
        ]
        resent = random.Random(12).sample(notifications, SNS_RESENT)
        sent_ids = {email.message_from_bytes(raw)["Message-ID"] for raw in smtp_mails + sns_mails}
        assert len(sent_ids) == SMTP_MAILS + SNS_MAILS

        senders = [
            threading.Thread(target=_smtp_sender, args=(smtp_port, owner.address, smtp_mails[i::6], stats))
            for i in range(6)
        ] + [
            threading.Thread(target=_sns_sender, args=(f"{base}/webhooks/ses/inbound", batch, stats))
            for batch in (notifications[0::3], notifications[1::3], notifications[2::3] + resent)
        ]
        storm_over = threading.Event()
        poller = threading.Thread(target=_api_poller, args=(base, owner.token, stats, storm_over))
        poller.start()
        for thread in senders:
            thread.start()

        # The storm: kill the worker every ~2 s; restart PostgreSQL after 6 kills, Redis after 12.
        pg_dir = _pg_data_dir()
        connection.close()
        kills = 0
        while kills < MIN_KILLS or any(t.is_alive() for t in senders):
            time.sleep(KILL_EVERY)
            _kill(worker)
            kills += 1
            worker = _spawn(worker_args, env, logs / "worker.log")
            if kills == 6:
                # Down long enough for the API poller to see it, then up again.
                _pg_ctl("stop", "-D", pg_dir, "-m", "fast", "-w")
                time.sleep(3)
                subprocess.run(
                    ["scripts/pg.sh", "start", pg_dir, str(settings.DATABASES["default"]["PORT"])],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                stats.add("pg_restarts")
            if kills == 12:
                stop(redis)
                time.sleep(1)
                redis = _redis_start(redis_port, redis_dir)
                stats.add("redis_restarts")
            assert time.monotonic() - started < 600, "the storm did not end"
        storm_over.set()
        poller.join()
        for thread in senders:
            thread.join()
        storm_seconds = time.monotonic() - started

        # Calm: the last worker stays up; beat sweeps stored deliveries and dispatches webhooks.
        beat = _spawn(
            [*CELERY, "beat", "--loglevel=WARNING", "-s", str(tmp_path / "beat-schedule")], env, logs / "beat.log"
        )
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            connection.close()
            done = Message.objects.filter(agent=owner.agent).count()
            pending = InboundDelivery.objects.exclude(status=InboundDelivery.Status.PROCESSED).count()
            with _Receiver.lock:
                delivered = len(_Receiver.seen)
            if done >= SMTP_MAILS + SNS_MAILS and not pending and delivered >= done:
                break
            time.sleep(2)
        total_seconds = time.monotonic() - started
    finally:
        storm_over_set = locals().get("storm_over")
        if storm_over_set is not None:
            storm_over_set.set()
        for proc in [worker, beat, *procs.values()]:
            if proc is not None:
                _kill(proc)
        stop(redis)
        receiver.shutdown()

    connection.close()
    messages = list(Message.objects.filter(agent=owner.agent).values_list("id", "internet_message_id", "storage_key"))
    received_ids = Counter(m[1] for m in messages)
    events = Counter(Event.objects.filter(type="message.received").values_list("payload__MessageID", flat=True))
    raw_objects = {m[2] for m in messages if _stored(tmp_path / "mail", m[2])}
    with _Receiver.lock:
        seen = Counter(_Receiver.seen)
    figures = {
        "mails": SMTP_MAILS + SNS_MAILS,
        "storm_seconds": round(storm_seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "worker_kills": kills,
        "pg_restarts": stats.counts["pg_restarts"],
        "redis_restarts": stats.counts["redis_restarts"],
        "smtp_retries": stats.counts["smtp_retries"],
        "sns_posts": stats.counts["sns_posted"],
        "sns_retries": stats.counts["sns_retries"],
        "api_statuses": dict(stats.api_statuses),
        "permanent_refusals": len(stats.refusals),
        "index_rows": len(messages),
        "raw_objects": len(raw_objects),
        "lost": len(sent_ids - set(received_ids)),
        "duplicated": sum(n - 1 for n in received_ids.values() if n > 1),
        "events_recorded": sum(events.values()),
        "events_delivered": len(seen),
        "event_redeliveries": sum(seen.values()) - len(seen),
    }
    print("\ncrash-ingest figures:", json.dumps(figures))
    if FIGURES_FILE:
        Path(FIGURES_FILE).write_text(json.dumps(figures, indent=2))

    assert not stats.refusals, stats.refusals[:3]
    assert figures["worker_kills"] >= MIN_KILLS
    assert figures["pg_restarts"] == 1 and figures["redis_restarts"] == 1
    assert figures["lost"] == 0, sorted(sent_ids - set(received_ids))[:5]
    assert figures["duplicated"] == 0
    assert len(messages) == SMTP_MAILS + SNS_MAILS
    assert len(raw_objects) == SMTP_MAILS + SNS_MAILS
    assert not InboundDelivery.objects.exclude(status=InboundDelivery.Status.PROCESSED).exists()
    # Every message.received event, one per message, reached the receiver at least once.
    assert set(events) == {m[0] for m in messages} and all(n == 1 for n in events.values())
    assert set(seen) == set(events)
    # While PostgreSQL was down the API said 503 with the envelope, never 500, and recovered.
    assert stats.api_statuses[503] >= 1, dict(stats.api_statuses)
    assert stats.api_statuses[500] == 0 and not stats.api_bad, stats.api_bad[:3]
    assert stats.api_statuses[200] > 0

"""compat.kombu_fs: the embedded mode's broker (kombu's filesystem transport) as `make run`
configures it, in a process with its settings: a consumer waiting on an empty queue takes a
message as soon as another connection publishes it, not at its next poll a second later,
and a consumer listing the folder while messages are written never takes a half-written
one (issue 24)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat.kombu_fs import CHECKED_VERSIONS, WakeSocket, wake_all

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)

# One consumer (a thread: its own connection, as a worker has) and one publisher (another
# connection, as the SMTP listener has), both on the Celery app's broker settings.
PROBE = """
import json, threading, time
import django; django.setup()
from assmbl.celery import app

received, errors = [], []

def consume(count, first_ready):
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("probe")
        first_ready.set()
        try:
            while len(received) < count:
                msg = queue.get(timeout=20)
                received.append((time.monotonic(), msg.payload))
                msg.ack()
        except Exception as exc:
            errors.append(repr(exc))

ready = threading.Event()
consumer = threading.Thread(target=consume, args=(301, ready))
consumer.start()
ready.wait()
with app.connection_for_write() as conn:
    queue = conn.SimpleQueue("probe")
    time.sleep(0.4)
    sent = time.monotonic()
    queue.put({"n": -1})
    while not received and time.monotonic() < sent + 5:
        time.sleep(0.005)
    for n in range(300):
        queue.put({"n": n, "pad": "x" * (n * 37 % 5000)})
consumer.join(60)
print(json.dumps({
    "latency": received[0][0] - sent if received else None,
    "numbers": [p["n"] for _, p in received],
    "errors": errors,
    "transport": app.connection_for_read().transport_cls,
}))
"""


def _probe(tmp_path: Path) -> dict[str, object]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATA_DIR": str(tmp_path),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "assmbl.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_installed_kombu_is_one_the_transport_was_checked_against() -> None:
    installed = importlib.metadata.version("kombu")
    assert installed in CHECKED_VERSIONS, (
        f"kombu {installed} is installed, but compat/kombu_fs.py was checked against {CHECKED_VERSIONS}: "
        "re-check the internals its docstring lists (Transport.drain_events, Channel._put and _get's file "
        "names, basic_ack, polling_interval), run tests/compat/test_kombu_fs.py, then add the version."
    )


def test_a_waiting_consumer_takes_a_message_at_once_and_never_a_half_written_one(tmp_path: Path) -> None:
    result = _probe(tmp_path)

    assert result["errors"] == []
    # Stock, the consumer slept out its 1 s polling interval: ~0.6 s here.
    assert isinstance(result["latency"], float) and result["latency"] < 0.25, result["latency"]
    # Every message, whole (kombu orders files by the millisecond they were written in, not
    # within one).
    assert sorted(result["numbers"]) == [-1, *range(300)]  # type: ignore[call-overload]


def test_a_consumer_in_a_folder_too_deep_for_a_socket_address_is_woken(tmp_path: Path) -> None:
    # A DATA_DIR deep enough (make test's private TMPDIR, a long deploy path) that the socket
    # is bound in the temp folder and linked from the wake folder: a wake must still reach it.
    folder = tmp_path / ("deep" * 30) / "wake"
    consumer = WakeSocket(str(folder))
    try:
        assert len(consumer.path.encode()) >= 108
        wake_all(str(folder))
        assert consumer.sock.recv(16)
    finally:
        consumer.sock.close()

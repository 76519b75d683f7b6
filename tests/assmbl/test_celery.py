"""Services queue their tasks by name (``assmbl.celery.task_queue``): every name they use is a
task that Django's start registers, in a process that never imported a tasks module. A worker
of the content queue alone lowers its own CPU priority as it starts."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUEUED = re.compile(r"""task_queue\(\s*["']([\w.]+)["']""")

REGISTERED = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "assmbl.settings"
import django
django.setup()
from assmbl.celery import app
print(json.dumps(sorted(name for name in app.tasks if not name.startswith("celery."))))
"""


def _queued_names() -> set[str]:
    return {
        name
        for package in ("assmbl", "mail", "webhooks", "directory")
        for path in (ROOT / package).rglob("*.py")
        for name in QUEUED.findall(path.read_text())
    }


def test_every_task_a_service_queues_by_name_is_registered_when_django_starts() -> None:
    out = subprocess.run([sys.executable, "-c", REGISTERED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    registered = set(json.loads(out.stdout.strip().splitlines()[-1]))

    queued = _queued_names()
    assert {"mail.tasks.send_message", "mail.tasks.process_deliveries", "webhooks.tasks.dispatch_event"} <= queued
    assert queued - registered == set()


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field; the command name (2nd) may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[16])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads niceness from /proc")
def test_a_worker_of_the_content_queue_alone_runs_at_content_worker_nice_in_its_own_session() -> None:
    top = Path(tempfile.mkdtemp(prefix="nice"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="assmbl.settings",
        DEBUG="1",
        DATA_DIR=str(top),
        CONTENT_WORKER_NICE="7",
        DATABASE_URL=f"sqlite:///{top}/db.sqlite3",
        CELERY_BROKER_URL="memory://",
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    celery = str(Path(sys.executable).parent / "celery")
    command = [celery, "-A", "assmbl", "worker", "--queues", "content", "--pool", "solo", "--loglevel", "WARNING"]
    # Its own session, as manage.py serve starts each process: its own autogroup on Linux.
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and _nice(proc.pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        nice = _nice(proc.pid) if proc.poll() is None else None
        group = Path(f"/proc/{proc.pid}/autogroup")
        group_nice = group.read_text().split()[-1] if group.exists() and proc.poll() is None else None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(top, ignore_errors=True)

    assert nice == 7
    if Path("/proc/sys/kernel/sched_autogroup_enabled").exists() and group_nice is not None:
        assert group_nice == "7"

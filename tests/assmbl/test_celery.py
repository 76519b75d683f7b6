"""Services queue their tasks by name (``assmbl.celery.task_queue``): every name they use is a
task that Django's start registers, in a process that never imported a tasks module."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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

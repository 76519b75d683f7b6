"""Run every process of the service in the foreground; Ctrl-C stops them all.

Embedded (``make run``): gunicorn, the SMTP listener, and a Celery worker with beat on
the configured broker (kombu's filesystem transport by default, so no server is needed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


def embedded_processes(http_port: int, smtp_port: int, web_workers: int, celery_concurrency: int) -> dict[str, list[str]]:
    python = sys.executable
    bindir = os.path.dirname(python)
    return {
        "web": [
            os.path.join(bindir, "gunicorn"),
            "assmbl.wsgi",
            "--bind", f"127.0.0.1:{http_port}",
            "--workers", str(web_workers),
            "--threads", "4",
            "--access-logfile", "-",
        ],
        "smtp": [python, "manage.py", "smtpd", "--host", settings.SMTP_HOST, "--port", str(smtp_port)],
        "worker": [
            os.path.join(bindir, "celery"), "-A", "assmbl", "worker", "--beat",
            "--loglevel", "INFO", "--concurrency", str(celery_concurrency),
            "--schedule", str(settings.DATA_DIR / "celerybeat-schedule"),
        ],
    }


def broker_folders() -> None:
    for folder in getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).values():
        if isinstance(folder, str):
            os.makedirs(folder, exist_ok=True)


class Command(BaseCommand):
    help = "Run the web server, SMTP listener and Celery worker together in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "8000")))
        parser.add_argument("--smtp-port", type=int, default=settings.SMTP_PORT)
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--celery-concurrency", type=int, default=2)

    def handle(self, *args: Any, http_port: int, smtp_port: int, web_workers: int, celery_concurrency: int, **options: Any) -> None:
        broker_folders()
        procs = {
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
            for name, cmd in embedded_processes(http_port, smtp_port, web_workers, celery_concurrency).items()
        }
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping the rest")
                        stopping = True
                time.sleep(0.5)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in procs.values():
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            self.stdout.write("stopped")

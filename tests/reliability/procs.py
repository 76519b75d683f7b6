"""Start the service's own processes (for fault injection, killed by pid; or the whole
service as `make run` and `make run-stack` start it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection

from bench._common import Served
from bench._common import engines_installed as engines_installed  # the reliability tests' skip
from bench._common import serve as bench_serve

ROOT = Path(__file__).resolve().parents[2]
_SERVE_PORTS = ("HTTP", "SMTP", "PG", "REDIS")


CELERY = [sys.executable, "-m", "celery", "-A", "assmbl"]


def celery_worker(*extra: str) -> list[str]:
    """A prefork worker of two children, quiet, without heartbeats: the one the crash
    proofs kill; ``extra`` names its queues and its node."""
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return [*CELERY, "worker", "--pool=prefork", "--concurrency=2", "--loglevel=WARNING", *quiet, *extra]


def gunicorn_wsgi(port: int, *extra: str) -> list[str]:
    """The WSGI app under gunicorn's threaded workers (2 x 8 threads) on 127.0.0.1:``port``."""
    bind = f"127.0.0.1:{port}"
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "assmbl.wsgi:application",
        "-b",
        bind,
        "-k",
        "gthread",
        "-w",
        "2",
        "--threads",
        "8",
        *extra,
    ]


def test_database_url() -> str:
    """The URL of the database this test runs on, for child processes to share it."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="assmbl.settings",
        DEBUG="1",
        DATA_DIR=str(data_dir),
        DATABASE_URL=test_database_url(),
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    env.update(extra)
    return env


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def start_smtpd(port: int, env: dict[str, str]) -> subprocess.Popen[Any]:
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "smtpd", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    return proc


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


@contextmanager
def serve(*, stack: bool, **extra: str) -> Iterator[Served]:
    """`manage.py serve` started the one way bench/wake.py starts it (bench/_common.serve), on
    free ports, or those TEST_SERVE_<NAME>_PORT pins (a shared machine's allotted range)."""
    ports = {f"{name.lower()}_port": int(os.environ.get(f"TEST_SERVE_{name}_PORT") or 0) for name in _SERVE_PORTS}
    with bench_serve(stack=stack, **ports, **extra) as served:
        yield served

"""Start the service's own processes (for fault injection, killed by pid; or the whole
service as `make run` and `make run-stack` start it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.db import connection

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
# Not for a served service: the test run's own engines (the stack starts its own) and pytest's.
SERVE_ENV_DROPPED = ("PYTEST", "DATABASE_URL", "STACK_DATABASE_URL", "CELERY", "CACHE_URL")


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


@dataclass
class Served:
    """`manage.py serve` in its own DATA_DIR: where it answers, and the environment in which
    `manage.py` reaches the same service (its dev.env holds the engines' URLs)."""

    base: str
    smtp_port: int
    env: dict[str, str]
    data_dir: Path


def engines_installed() -> bool:
    """What `serve --stack` starts: Debian's PostgreSQL server and redis-server."""
    return bool(list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))) and shutil.which("redis-server") is not None


def _port(name: str) -> int:
    # TEST_SERVE_<NAME>_PORT pins a port (a shared machine's allotted range); else a free one.
    return int(os.environ.get(f"TEST_SERVE_{name}_PORT") or free_port())


def _answering(base: str, proc: subprocess.Popen[Any], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base}/v1/inbox", timeout=5)
            return
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"manage.py serve never answered:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)


@contextmanager
def serve(*, stack: bool, **extra: str) -> Iterator[Served]:
    """`manage.py serve` as `make run` starts it, or `make run-stack` (``stack``: its own
    PostgreSQL and Redis in DATA_DIR, migrated by serve), on free ports; stopped as Ctrl-C
    stops it (the engines last), its DATA_DIR removed."""
    data_dir = Path(tempfile.mkdtemp(prefix="assmbl-serve-"))
    data_dir.chmod(0o755)  # as root, scripts/pg.sh runs the cluster as postgres, who must reach it
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVE_ENV_DROPPED)}
    env.update(DATA_DIR=str(data_dir), DEBUG="1", LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="assmbl.settings")
    # No submission listener on its fixed port (a developer's shell may export it).
    env.update(SUBMISSION_PORT="0", **extra)
    http, smtp = _port("HTTP"), _port("SMTP")
    command = [sys.executable, "manage.py", "serve", "--http-port", str(http), "--smtp-port", str(smtp)]
    subprocess.run([sys.executable, "-m", "assmbl.devenv"], cwd=ROOT, env=env, check=True, capture_output=True)
    if stack:
        command += ["--stack", "--pg-port", str(_port("PG")), "--redis-port", str(_port("REDIS"))]
    else:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{http}"
        _answering(base, proc, log, timeout=240 if stack else 120)
        yield Served(base=base, smtp_port=smtp, env=env, data_dir=data_dir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if stack:  # serve stops them itself, unless it was killed
            for script, folder in (("redis.sh", "redis"), ("pg.sh", "pg")):
                subprocess.run([str(ROOT / "scripts" / script), "stop", str(data_dir / folder)], check=False, capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)

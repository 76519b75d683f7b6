"""`manage.py serve`'s web server: gunicorn's control socket lives in DATA_DIR, so that two
services on one machine (or a service and a test run) each keep their own."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from assmbl.management.commands.serve import web_command
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and stat.S_ISSOCK(path.stat().st_mode):
            return True
        time.sleep(0.1)
    return False


def test_gunicorn_s_control_socket_lives_in_data_dir(settings: Any) -> None:
    # A short folder of its own: a unix socket's path has at most 107 bytes, which pytest's
    # tmp_path under `make test`'s private TMPDIR passes (gunicorn then runs without one).
    top = Path(tempfile.mkdtemp(prefix="ctl", dir="/tmp"))
    data_dir, home = top / "var", top / "home"
    data_dir.mkdir()
    home.mkdir()
    settings.DATA_DIR = data_dir
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "DATA_DIR": str(data_dir), "DEBUG": "1"}
    proc = subprocess.Popen(
        web_command(free_port(), 1, 1),
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        found = _wait_for_socket(data_dir / "gunicorn.ctl", proc)
        # Not in the per-user default ($HOME/.gunicorn), which every gunicorn of the user shares.
        shared_default = (home / ".gunicorn").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(top, ignore_errors=True)

    assert found
    assert not shared_default

"""Settings derived from how the service is served: PUBLIC_BASE_URL follows HTTP_PORT unless set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assmbl.management.commands.serve import served_env

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_URL = (
    "import django; django.setup(); from django.utils import timezone; "
    "from mail.attachments import upload_url; from mail.models import Attachment; "
    "print(upload_url(Attachment(id='att_probe', expires_at=timezone.now())))"
)


def _upload_url(tmp_path: Path, **env: str) -> str:
    """An upload_url made in a process with `make run`'s environment plus ``env``."""
    base = {"PATH": os.environ.get("PATH", ""), "DATA_DIR": str(tmp_path), "DEBUG": "1"}
    out = subprocess.run(
        [sys.executable, "-c", UPLOAD_URL],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "assmbl.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_an_upload_url_points_at_the_port_make_run_serves_on(tmp_path: Path) -> None:
    url = _upload_url(tmp_path, HTTP_PORT="18417")

    assert url.startswith("http://127.0.0.1:18417/v1/attachments/att_probe/upload?")


def test_a_set_public_base_url_wins_over_the_port(tmp_path: Path) -> None:
    url = _upload_url(tmp_path, HTTP_PORT="18417", PUBLIC_BASE_URL="https://mail.example.net/")

    assert url.startswith("https://mail.example.net/v1/attachments/att_probe/upload?")


def test_serve_tells_its_processes_the_port_it_serves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # `manage.py serve --http-port 18417` with another HTTP_PORT (or none) in the environment.
    monkeypatch.setenv("HTTP_PORT", "8000")

    assert served_env(18417)["HTTP_PORT"] == "18417"

"""The README's samples, as a new user runs them line by line: each swaks line names a real
sender, so that the mail it sends can be replied to."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from mail.models import Message

README = Path(__file__).resolve().parents[1] / "README.md"


def _swaks_lines() -> list[list[str]]:
    lines = [line.split("  #")[0].strip() for line in README.read_text().splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("swaks ")]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_every_swaks_line_of_the_readme_sends_from_a_valid_address() -> None:
    lines = _swaks_lines()

    assert len(lines) >= 2
    for argv in lines:
        # Without --from, swaks sends as $USER@$(hostname), e.g. root@vm: not an address a
        # reply can go to (400 invalid_address).
        sender = _option(argv, "--from")
        assert sender is not None, shlex.join(argv)
        try:
            validate_email(sender)
        except ValidationError:
            pytest.fail(f"{sender!r} is not an address: {shlex.join(argv)}")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed (apt-get install swaks)")
def test_the_session_s_mail_sent_with_swaks_can_be_replied_to(smtp_listener: Any, owner: Any) -> None:
    [argv] = [argv for argv in _swaks_lines() if _option(argv, "--to") == "support@agents.localhost"]
    host, port = smtp_listener
    argv = [*argv]
    argv[argv.index("--server") + 1] = f"{host}:{port}"
    argv[argv.index("--to") + 1] = owner.address
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 10
    while not Message.objects.filter(agent=owner.agent).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    message = Message.objects.get(agent=owner.agent)

    response = owner.client.post(
        f"/v1/messages/{message.id}/reply", {"body": "Paid, thanks."}, format="json", HTTP_IDEMPOTENCY_KEY="reply-1"
    )

    assert response.status_code == 202, response.content
    assert Message.objects.get(pk=response.json()["MessageID"]).to == ["you@example.com"]

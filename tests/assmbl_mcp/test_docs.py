"""docs/mcp.md's worked example runs as written: it spawns ``assmbl-mcp``, waits for a
verification mail and prints its code."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.assmbl_mcp.conftest import ASSMBL_MCP
from tests.sdk.conftest import LiveAgent

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"


def worked_example() -> str:
    section = GUIDE.read_text().split("## Worked example", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


def test_the_worked_example_prints_the_code_of_the_verification_mail(
    live_agent: LiveAgent, receive: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENTMAIL_API_BASE_URL", live_agent.base_url)
    monkeypatch.setenv("AGENTMAIL_TOKEN", live_agent.token)
    monkeypatch.setenv("PATH", f"{ASSMBL_MCP.parent}{os.pathsep}{os.environ['PATH']}")
    done = threading.Event()

    def site_mails_the_code() -> None:
        # The wait counts mail that arrives after it starts: the site mails until it is read.
        while not done.wait(1.0):
            receive(live_agent, subject="Your verification code", body="Your code is 482913.")

    site = threading.Thread(target=site_mails_the_code)
    site.start()
    try:
        exec(compile(worked_example(), str(GUIDE), "exec"), {"__name__": "__main__"})
    finally:
        done.set()
        site.join()

    assert capsys.readouterr().out.strip().splitlines()[-1] == "482913"

"""``assmbl-mcp``, the installed console script: configured by the SDK's variables, it says
which one is missing instead of starting half-configured."""

from __future__ import annotations

import os
import subprocess

from assmbl_mcp.stdio import DEFAULT_BASE_URL, settings
from tests.assmbl_mcp.conftest import ASSMBL_MCP


def test_the_console_script_is_installed_beside_the_interpreter() -> None:
    assert ASSMBL_MCP.exists() and os.access(ASSMBL_MCP, os.X_OK)


def test_without_a_token_it_exits_naming_the_variable_on_stderr() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTMAIL_")}

    done = subprocess.run(
        [str(ASSMBL_MCP)], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )

    assert done.returncode != 0 and "AGENTMAIL_TOKEN" in done.stderr
    assert done.stdout == ""  # stdout belongs to the protocol


def test_it_reads_the_sdk_s_variables_with_the_local_service_as_default() -> None:
    assert settings({"AGENTMAIL_TOKEN": "amk_x"}) == (DEFAULT_BASE_URL, "amk_x")
    assert settings({"AGENTMAIL_TOKEN": " amk_x ", "AGENTMAIL_API_BASE_URL": "https://mail.example.com/v1"}) == (
        "https://mail.example.com/v1",
        "amk_x",
    )

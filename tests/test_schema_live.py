"""The schema and the server agree, checked against a live gunicorn as production runs it:
schemathesis, every phase (examples, coverage, fuzzing, stateful through the schema's
OpenAPI links) and every check (no 5xx; status codes, content types, headers and bodies as
documented; schema-valid requests accepted and schema-violating ones refused; no resource
used after it was deleted; auth never ignored), and 0 failures.

SCHEMA_LIVE_EXAMPLES (default 15) bounds the examples per operation and phase;
SCHEMA_LIVE_SEED (default fixed, so CI is reproducible) picks the data.
tests/schemathesis_hooks.py supplies what the schema can only name (cursors, a reachable
webhook URL) and keeps positive sends within the limits that span several fields.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assmbl.management.commands.serve import web_command
from directory.models import Account, ApiToken
from directory.services import token_create
from tests.conftest import free_port
from tests.factories import MessageFactory
from tests.reliability.procs import ROOT, child_env, stop, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

EXAMPLES = int(os.environ.get("SCHEMA_LIVE_EXAMPLES", "15"))
SEED = os.environ.get("SCHEMA_LIVE_SEED", "21190")
# Operator-only endpoints; every other one is called with the agent's token.
OPERATOR_PATHS = "^/v1/(agents|approvals|suppressions)"
# 413 is a refusal too (an attachment over MAX_ATTACHMENT_BYTES, a body over MAX_REQUEST_BYTES).
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


def _config(agent_token: str, operator_token: str) -> str:
    return f"""\
headers = {{ Authorization = "Bearer {agent_token}" }}
continue-on-failure = true

[checks]
enabled = true

[checks.negative_data_rejection]
expected-statuses = {REJECTED!r}

[generation]
max-examples = {EXAMPLES}

[phases]
examples.enabled = true
coverage.enabled = true
fuzzing.enabled = true
stateful.enabled = true

# DELETE /v1/agents/{{id}} deactivates: the agent stays readable (is_active false; its mail
# and its id are kept, API.md), which use_after_free would count as a deleted resource
# still served. The only exemption of the run.
[[operations]]
include-operation-id = "agents_get"
headers = {{ Authorization = "Bearer {operator_token}" }}
checks.use_after_free.enabled = false

# The event stream does not end (it is for clients that stay connected): its schema is
# checked in-process by tests/test_schema.py, where it ends, and it is proved live by
# tests/webhooks/test_events_waiting.py.
[[operations]]
include-path = "/v1/events/stream"
enabled = false

[[operations]]
include-path-regex = "{OPERATOR_PATHS}"
headers = {{ Authorization = "Bearer {operator_token}" }}
"""


def test_schemathesis_finds_nothing_against_a_live_server(transactional_db: Any, tmp_path: Path, owner: Any) -> None:
    MessageFactory.create_batch(3, agent=owner.agent)
    # The operator's account is another one: its calls (a token rotation, a deactivation)
    # must not revoke the agent token the rest of the run uses.
    operators = Account.objects.create(name="operators")
    operator_token = token_create(kind=ApiToken.Kind.OPERATOR, account=operators).plaintext
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(owner.token, operator_token))
    env = child_env(
        tmp_path,
        WEBHOOKS_ALLOW_LOOPBACK="1",
        API_RATE_LIMIT="1000000/min",
        LOG_LEVEL="ERROR",
        PYTHONPATH=str(ROOT),
        SCHEMATHESIS_HOOKS="tests.schemathesis_hooks",
    )
    port = free_port()
    web = subprocess.Popen(
        web_command(port, web_workers=1, threads=4),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, web, timeout=60)
        run = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "schemathesis"),
                "--config-file",
                str(config),
                "run",
                f"http://127.0.0.1:{port}/v1/schema?format=json",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--workers",
                "1",
                "--seed",
                SEED,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=360,
        )
    finally:
        stop(web)

    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    print(summary)
    cases = re.search(r"(\d+) generated, (.*)", summary)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert cases is not None and int(cases.group(1)) > 1000, summary
    assert "failure" not in cases.group(2) and "error" not in cases.group(2), summary
    # Only the upload (whose credential is a signed URL, not a token) answers 401/403 alone:
    # more would mean the run lost its tokens and stopped testing anything behind them.
    locked_out = re.search(r"Authentication failed: (\d+) operation", summary)
    assert locked_out is None or int(locked_out.group(1)) <= 1, summary
    selected, tested = re.search(r"Selected: (\d+)/(\d+)", summary), re.search(r"Tested: (\d+)", summary)
    # Every operation but the event stream (left out in _config: it does not end).
    assert selected and tested and int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) - 1 >= 36, (
        summary
    )

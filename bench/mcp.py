"""What an MCP tool call adds to the REST call it wraps: p50/p99 of `get_message` and
`list_inbox` through the SDK (the REST call), through `assmbl_mcp.http:app` under uvicorn
(streamable HTTP, stateless, on a unix socket) and through `assmbl-mcp` (stdio), all against
one gunicorn serving the API on SQLite (the embedded mode's database).

Usage: python bench/mcp.py [--calls 200] [--messages 50] [--port 8106]
Prints one JSON object: per call, wall p50/p99 and the CPU of the client and the MCP server
process (`cpu_per_call_ms`; the API's gunicorn is the same for all and left out); for each MCP
transport the overhead over the REST call, in wall p50 (`overhead_p50_ms`, goal ≤ 10) and in
CPU (`overhead_cpu_ms`, the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/mcp.py` puts bench/ first on the path, where this file would shadow the `mcp`
# package; the other benchmark modules are imported as `bench.*` from the root.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

from bench._common import cleanup, cpu_ticks, django_setup, machine, percentile, temp_dir, tree_ticks  # noqa: E402

BIN = Path(sys.executable).parent
SERVER_ENV = {
    "DEBUG": "0",
    "LOG_LEVEL": "WARNING",
    "SECRET_KEY": "bench-secret-key-not-for-production",
    "TOKEN_PEPPER": "bench-token-pepper-not-for-production",
    "API_RATE_LIMIT": "100000000/min",
    "CELERY_TASK_ALWAYS_EAGER": "1",
}


def seed(data_dir: str, messages: int) -> None:
    """Child: migrate, one agent, ``messages`` real mails through ingestion; prints
    ``{token, message_id}``."""
    django_setup(f"sqlite:///{data_dir}/db.sqlite3", data_dir, CELERY_TASK_ALWAYS_EAGER="1")
    from bench._common import realistic_mail
    from directory.models import Account
    from directory.services import agent_create
    from mail.ingest import delivery_accept
    from mail.models import InboundDelivery, Message

    agent, issued = agent_create(agent_id="mcpbench", account=Account.objects.create(name="bench"))
    for i in range(messages):
        raw = realistic_mail(i, agent.address)
        delivery_accept(raw=raw, source=InboundDelivery.Source.SMTP, envelope_recipients=[agent.address])
    message_id = Message.objects.filter(agent=agent).order_by("received_at").values_list("id", flat=True)[0]
    print(json.dumps({"token": issued.plaintext, "message_id": message_id}))


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, stdout=handle, stderr=handle)


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


def server_ticks(exclude: set[int]) -> int:
    """CPU ticks of this process's children but the API's servers: the MCP servers."""
    snapshot = cpu_ticks()
    return sum(
        tree_ticks(snapshot, pid) for pid, (ppid, _) in snapshot.items() if ppid == os.getpid() and pid not in exclude
    )


async def timed(call: Callable[[], Awaitable[Any]], calls: int, exclude: set[int]) -> dict[str, Any]:
    """Wall times of ``calls`` calls, and the CPU per call of this process (the client) and of
    the MCP server processes: on a shared, loaded machine the CPU is the steadier figure."""
    for _ in range(10):  # warm-up: connections, imports, caches
        await call()
    times = []
    client_cpu, ticks = time.process_time(), server_ticks(exclude)
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    client_ms = (time.process_time() - client_cpu) * 1000 / calls
    server_ms = (server_ticks(exclude) - ticks) * 1000 / os.sysconf("SC_CLK_TCK") / calls
    return {"times": times, "client_cpu_ms": client_ms, "server_cpu_ms": server_ms}


async def measure(
    base_url: str, token: str, message_id: str, socket: str, calls: int, api_pids: set[int]
) -> dict[str, dict[str, Any]]:
    import httpx2
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    from agentmail_client import AsyncAgentMailClient

    results: dict[str, dict[str, Any]] = {}
    async with AsyncAgentMailClient(base_url, token) as rest:
        results["rest get_message"] = await timed(lambda: rest.get_message(message_id), calls, api_pids)
        results["rest list_inbox"] = await timed(lambda: rest.list_inbox(limit=25), calls, api_pids)
    http = httpx2.AsyncClient(
        transport=httpx2.AsyncHTTPTransport(uds=socket), headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    stdio = StdioServerParameters(
        command=str(BIN / "assmbl-mcp"), env={"AGENTMAIL_API_BASE_URL": base_url, "AGENTMAIL_TOKEN": token}
    )
    async with http, Client(streamable_http_client("http://mcp/mcp", http_client=http)) as over_http:
        async with Client(stdio) as over_stdio:
            for name, session in (("http", over_http), ("stdio", over_stdio)):
                results[f"{name} get_message"] = await timed(
                    lambda s=session: s.call_tool("get_message", {"message_id": message_id}), calls, api_pids
                )
                results[f"{name} list_inbox"] = await timed(
                    lambda s=session: s.call_tool("list_inbox", {"limit": 25}), calls, api_pids
                )
    return results


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, result in results.items():
        times = result["times"]
        cpu = result["client_cpu_ms"] + result["server_cpu_ms"]
        figures[name] = {
            "p50_ms": round(percentile(times, 50), 2),
            "p99_ms": round(percentile(times, 99), 2),
            "cpu_per_call_ms": round(cpu, 2),
            "mcp_server_cpu_ms": round(result["server_cpu_ms"], 2),
        }
        transport, tool = name.split(" ")
        if transport != "rest":
            rest = figures[f"rest {tool}"]
            figures[name]["overhead_p50_ms"] = round(figures[name]["p50_ms"] - rest["p50_ms"], 2)
            figures[name]["overhead_cpu_ms"] = round(cpu - rest["cpu_per_call_ms"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--port", type=int, default=8106, help="the API's port (gunicorn)")
    parser.add_argument("--child-seed", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child_seed:
        seed(opts.child_seed, opts.messages)
        return
    data_dir = temp_dir("bench-mcp-")
    env = {**SERVER_ENV, "DATA_DIR": data_dir, "DATABASE_URL": f"sqlite:///{data_dir}/db.sqlite3"}
    seeded = subprocess.run(
        [sys.executable, __file__, "--child-seed", data_dir, "--messages", str(opts.messages)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    seeded_ids = json.loads(seeded.stdout.strip().splitlines()[-1])
    base_url = f"http://127.0.0.1:{opts.port}/v1"
    socket = f"{data_dir}/mcp.sock"
    gunicorn = start(
        [str(BIN / "gunicorn"), "assmbl.wsgi", "--bind", f"127.0.0.1:{opts.port}", "--workers", "2", "--threads", "4"],
        env,
        Path(data_dir) / "gunicorn.log",
    )
    uvicorn = start(
        [str(BIN / "uvicorn"), "assmbl_mcp.http:app", "--uds", socket, "--log-level", "warning"],
        {"MCP_API_BASE_URL": base_url},
        Path(data_dir) / "uvicorn.log",
    )
    try:
        wait_until(
            lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", base_url], check=False).returncode == 0, "gunicorn"
        )
        wait_until(lambda: Path(socket).exists(), "uvicorn")
        results = asyncio.run(
            measure(base_url, seeded_ids["token"], seeded_ids["message_id"], socket, opts.calls, {gunicorn.pid})
        )
    finally:
        for process in (uvicorn, gunicorn):
            process.terminate()
            process.wait(10)
        cleanup(data_dir)
    print(json.dumps({"machine": machine(), "calls": opts.calls, **summary(results)}, indent=2))


if __name__ == "__main__":
    main()

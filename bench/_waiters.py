"""Many agents waiting at once against `manage.py serve`: 100 long-polls and 100 event streams
from 20 agents, on one event loop, while another agent lists its inbox. Shared by
bench/waiters.py (the figures: the lister's p99 against its idle figure, the wake-up time) and
tests/reliability/test_waiting_load.py (the capability: every wait open, nobody starved,
everybody woken)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Served, percentile, send_one  # noqa: E402

AGENTS, LONG_POLLS, STREAMS = 20, 5, 5
WAITS = AGENTS * (LONG_POLLS + STREAMS)
SAMPLES = 100

_CREATE = """
import json
from directory.models import Account
from directory.services import agent_create
account = Account.objects.create(name="load")
out = {}
for name in ["lister"] + [f"waiter{n}" for n in range(%d)]:
    agent, issued = agent_create(agent_id=name, account=account)
    out[name] = [issued.plaintext, agent.address]
print(json.dumps(out))
"""


def waiting_agents(served: Served) -> dict[str, list[str]]:
    """The lister and the waiters, ``name -> [token, address]``, once a first mail has gone
    through the listener and a worker: the web server answers before the workers have booted,
    and their boot would be measured as load."""
    # manage.py reads DATA_DIR/dev.env (the token pepper, the stack's DATABASE_URL) as serve's
    # processes do.
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _CREATE % AGENTS],
        cwd=ROOT,
        env=served.env,
        check=True,
        capture_output=True,
        text=True,
    )
    agents: dict[str, list[str]] = json.loads(made.stdout.strip().splitlines()[-1])
    token, address = agents["lister"]
    send_one(served.smtp_port, address, "warm up")
    deadline = time.monotonic() + 120
    headers = {"Authorization": f"Bearer {token}"}
    while not httpx.get(f"{served.base}/v1/inbox", headers=headers, timeout=10).json()["items"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the first mail was never indexed")
        time.sleep(0.2)
    return agents


def inbox_times(base: str, token: str) -> list[float]:
    """``SAMPLES`` first inbox pages, one after another; each one's seconds."""
    times = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=90) as client:
        for _ in range(SAMPLES):
            started = time.perf_counter()
            status = client.get("/v1/inbox?limit=25").status_code
            if status != 200:
                raise RuntimeError(f"GET /v1/inbox answered {status}")
            times.append(time.perf_counter() - started)
    return times


def p99(times: list[float]) -> float:
    return percentile(times, 99)


class Waiters:
    """The waits, on one event loop in a thread; each records when it saw ``subject``."""

    def __init__(self, base: str, agents: dict[str, list[str]], subject: str) -> None:
        self.base, self.agents, self.subject = base, agents, subject
        self.seen: dict[str, float] = {}
        self.open = 0
        self.unanswered: set[str] = set()  # streams whose response has not begun
        self.errors: list[str] = []
        self.reconnects: list[str] = []
        self.loop = asyncio.new_event_loop()
        self._main: asyncio.Future[Any] | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self.run(),), daemon=True)
        self._thread.start()

    def wait_open(self, timeout: float = 60) -> None:
        """Until every wait is open (or one failed, or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.open < WAITS and time.monotonic() < deadline and not self.errors:
            time.sleep(0.2)

    def wait_seen(self, timeout: float) -> None:
        """Until every wait of the agent sent to has seen ``subject`` (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < LONG_POLLS + STREAMS and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self._main is not None:
            self.loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(30)

    async def long_poll(self, client: httpx.AsyncClient, name: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        after = (await client.get("/v1/events", headers=headers)).json()["next_cursor"]
        while True:
            self.open += 1
            try:
                response = await client.get("/v1/events", params={"after": after, "wait": 60}, headers=headers)
            except httpx.ConnectError as exc:
                # Nothing listens any more: retrying would connect in a tight loop for as long
                # as this process lives (the egress tests' socket spy once saw such a loop).
                self.errors.append(f"{name} {exc!r}")
                return
            except httpx.TransportError as exc:
                # A kept-alive connection the server closed (its keep-alive timeout) as the
                # request went out: an HTTP client sends an idempotent GET again (RFC 9112 §9.3.1).
                self.reconnects.append(f"{name} {exc!r}")
                continue
            finally:
                self.open -= 1
            if response.status_code != 200:
                self.errors.append(f"{name} {response.status_code} {response.text[:200]}")
                return
            page = response.json()
            after = page["next_cursor"]
            if any(item["data"].get("Subject") == self.subject for item in page["items"]):
                self.seen.setdefault(f"poll:{name}", time.monotonic())

    async def stream(self, client: httpx.AsyncClient, name: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        after = (await client.get("/v1/events", headers=headers)).json()["next_cursor"]
        self.unanswered.add(name)
        while True:
            try:
                await self._stream_once(client, name, headers, after)
                return
            except httpx.ConnectError as exc:
                self.errors.append(f"{name} stream {exc!r}")
                return
            except httpx.TransportError as exc:
                # As an EventSource does after a network error (the stream's `retry:`), once
                # per drop; the drops are printed, and a stream that never began is named.
                self.reconnects.append(f"{name} {exc!r}")
                await asyncio.sleep(0.5)

    async def _stream_once(self, client: httpx.AsyncClient, name: str, headers: dict[str, str], after: str) -> None:
        async with client.stream("GET", "/v1/events/stream", params={"after": after}, headers=headers) as response:
            if response.status_code != 200:
                self.errors.append(f"{name} stream {response.status_code}")
                return
            self.open += 1
            self.unanswered.discard(name)
            try:
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and json.loads(line[6:])["data"].get("Subject") == self.subject:
                        self.seen.setdefault(f"sse:{name}", time.monotonic())
            finally:
                self.open -= 1

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=WAITS * 2, max_keepalive_connections=WAITS * 2)
        async with httpx.AsyncClient(base_url=self.base, timeout=httpx.Timeout(90), limits=limits) as client:
            tasks = []
            for name, (token, _) in self.agents.items():
                if name == "lister":
                    continue
                tasks += [self.long_poll(client, f"{name}.{n}", token) for n in range(LONG_POLLS)]
                tasks += [self.stream(client, f"{name}.{n}", token) for n in range(STREAMS)]
            self._main = asyncio.gather(*tasks, return_exceptions=True)
            try:
                outcomes = await self._main
            except asyncio.CancelledError:
                return
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    self.errors.append(repr(outcome))

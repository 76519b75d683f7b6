"""Wake-up latency from the SMTP 250, against the service as `make run` / `make run-stack`
start it (`manage.py serve`, its own DATA_DIR, ports from the command line).

Phase 1 (latency): ``--mails`` mails ``--gap`` seconds apart, each in its own SMTP session,
to an agent with a loopback webhook, a long-poll (``GET /v1/events?wait=30``) and an SSE
stream open, and an inbox poller: for each mail, from its 250 to the webhook POST, to the
long-poll's and the stream's return, and to its first sight in ``GET /v1/inbox``.
Phase 2 (throughput): ``--sessions`` sequential single-mail sessions, back to back; how long
after the last 250 the last one is in the inbox, and msg/s from the first 250.

    .venv/bin/python bench/wake.py                 # embedded (SQLite, filesystem broker)
    .venv/bin/python bench/wake.py --stack         # PostgreSQL + Redis
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, percentile, send_one, serve_arguments, serve_parsed  # noqa: E402

GOALS = {"webhook": 1.0, "longpoll": 0.5, "sse": 0.5, "visible": 0.5}


class Seen:
    """First arrival time of each subject, per channel."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at: dict[str, dict[str, float]] = {}

    def mark(self, channel: str, subject: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.at.setdefault(channel, {}).setdefault(subject, now)


def receiver(seen: Seen) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.mark("webhook", str(body.get("data", {}).get("Subject", "")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def longpoll(base: str, token: str, seen: Seen, stop: threading.Event) -> None:
    after = ""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=40) as client:
        after = client.get("/v1/events").json()["next_cursor"]
        while not stop.is_set():
            page = client.get("/v1/events", params={"after": after, "wait": 30}).json()
            for item in page.get("items", []):
                seen.mark("longpoll", str(item["data"].get("Subject", "")))
            after = page.get("next_cursor", after)


def sse(base: str, token: str, seen: Seen, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=None) as client:
        after = client.get("/v1/events").json()["next_cursor"]
        with client.stream("GET", "/v1/events/stream", params={"after": after}) as response:
            if response.status_code != 200:
                print(f"SSE: {response.status_code}, not measured")
                return
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("data: "):
                    seen.mark("sse", str(json.loads(line[6:])["data"].get("Subject", "")))


def inbox_poller(base: str, token: str, seen: Seen, stop: threading.Event) -> None:
    """Reads the whole inbox from its start each time: a cursor kept between reads would pass
    a mail whose indexing commits after a later-received one's (two ingest workers), and
    never see it."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while not stop.is_set():
            params: dict[str, Any] = {"limit": 100}
            while True:
                response = client.get("/v1/inbox", params=params)
                if response.status_code != 200:
                    seen.mark("inbox_errors", f"{response.status_code} {time.monotonic()}")
                    break
                page = response.json()
                for item in page["items"]:
                    seen.mark("visible", str(item.get("Subject", "")))
                if not page["has_more"]:
                    break
                params["cursor"] = page["next_cursor"]
            time.sleep(0.02)


def agent(env: dict[str, str], name: str) -> dict[str, str]:
    # manage.py reads DATA_DIR/dev.env (the secrets serve uses) for what env does not set.
    out = subprocess.run(
        [sys.executable, "manage.py", "create_agent", name, "--json"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def stats(seen: Seen, sent: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for channel in ("webhook", "longpoll", "sse", "visible"):
        got = seen.at.get(channel, {})
        lat = [got[s] - t for s, t in sent.items() if s in got]
        out[channel] = {
            "n": len(lat),
            "of": len(sent),
            "p50": round(percentile(lat, 50), 3) if lat else None,
            "p99": round(percentile(lat, 99), 3) if lat else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve_arguments(parser, offset=7)
    parser.add_argument("--mails", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.25)
    parser.add_argument("--sessions", type=int, default=100)
    args = parser.parse_args()
    # The pollers read far faster than the token's default 1200/min: throttled (429), they
    # would measure the throttle instead of the wake.
    service = serve_parsed(args, WEBHOOKS_ALLOW_LOOPBACK="1", API_RATE_LIMIT="100000000/min")
    stop = threading.Event()
    with service as served:
        try:
            measure(args, served.base, served.env, stop)
        finally:
            stop.set()


def measure(args: argparse.Namespace, base: str, env: dict[str, str], stop: threading.Event) -> None:
    """Both phases against the running service; the watcher threads end when ``stop`` is set."""
    who = agent(env, "waker")
    token, rcpt = who["token"], who["address"]
    seen = Seen()
    hook = receiver(seen)
    r = httpx.post(
        f"{base}/v1/webhooks",
        headers={"Authorization": f"Bearer {token}"},
        json={"url": f"http://127.0.0.1:{hook.server_address[1]}/hook"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    for target in (longpoll, sse, inbox_poller):
        threading.Thread(target=target, args=(base, token, seen, stop), daemon=True).start()
    time.sleep(2)
    sent: dict[str, float] = {}
    for i in range(args.mails):
        subject = f"wake-{i}"
        sent[subject] = send_one(args.smtp_port, rcpt, subject)
        time.sleep(args.gap)
    time.sleep(max(5.0, 3 * args.gap))
    latency = stats(seen, sent)
    burst: dict[str, float] = {}
    first = time.monotonic()
    for i in range(args.sessions):
        subject = f"burst-{i}"
        burst[subject] = send_one(args.smtp_port, rcpt, subject)
    last_subject = f"burst-{args.sessions - 1}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len([s for s in burst if s in seen.at.get("visible", {})]) < len(burst):
        time.sleep(0.05)
    visible = seen.at.get("visible", {})
    done = max(visible.get(s, float("nan")) for s in burst)
    result = {
        "mode": "stack" if args.stack else "embedded",
        "latency": latency,
        "inbox_errors": len(seen.at.get("inbox_errors", {})),
        "sessions": {
            "n": args.sessions,
            "indexed": len([s for s in burst if s in visible]),
            "last_after_its_250": round(visible.get(last_subject, float("nan")) - burst[last_subject], 3),
            "all_indexed_after_last_250": round(done - burst[last_subject], 3),
            "msg_per_s": round(args.sessions / (done - first), 1),
        },
    }
    print(json.dumps(result, indent=1))
    for channel, goal in GOALS.items():
        p99 = latency[channel]["p99"]
        print(
            f"{channel:9} p50 {latency[channel]['p50']} s  p99 {p99} s  goal p99 <= {goal} s  "
            f"{'ok' if p99 is not None and p99 <= goal and latency[channel]['n'] == args.mails else 'MISSED'}"
        )
    lag = result["sessions"]["all_indexed_after_last_250"]
    print(
        f"sessions  {args.sessions} indexed {lag} s after the last 250 (goal <= 1 s), {result['sessions']['msg_per_s']} msg/s"
    )


if __name__ == "__main__":
    # The watchers' connections end when the service stops; that is not a result.
    threading.excepthook = lambda hook: None
    main()

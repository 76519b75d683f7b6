"""200 waits against the service as `make run` / `make run-stack` start it: 100 long-polls
(`GET /v1/events?wait=60`) and 100 event streams (`GET /v1/events/stream`) from 20 agents,
while another agent reads its first inbox page 100 times in a row.

Each round: the lister's p99 with nothing waiting (the baseline, in the same run), then with
the 200 waits open (the ratio against it; goal ≤ 2×), then a mail over SMTP to one waiting
agent and how long after its 250 each of that agent's 10 waits saw it (goal: all within 1 s).

    .venv/bin/python bench/waiters.py                 # embedded (SQLite, filesystem broker)
    .venv/bin/python bench/waiters.py --stack         # PostgreSQL + Redis
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import send_one, serve_arguments, serve_parsed  # noqa: E402
from _waiters import WAITS, Waiters, inbox_times, p99, waiting_agents  # noqa: E402

GOAL_RATIO, GOAL_WAKE = 2.0, 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve_arguments(parser, offset=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    service = serve_parsed(args)
    rounds = []
    with service as served:
        agents = waiting_agents(served)
        lister = agents["lister"][0]
        inbox_times(served.base, lister)  # warm every web worker
        for n in range(args.rounds):
            time.sleep(2)  # the last round's 200 connections closed on the server's side too
            idle = p99(inbox_times(served.base, lister))
            subject = f"wake up {n}"
            waiters = Waiters(served.base, agents, subject=subject)
            try:
                waiters.wait_open()
                time.sleep(1)
                loaded = p99(inbox_times(served.base, lister))
                opened = waiters.open
                accepted = send_one(served.smtp_port, agents["waiter0"][1], subject)
                waiters.wait_seen(timeout=10)
                wakes = [at - accepted for at in waiters.seen.values()]
            finally:
                waiters.stop()
            row = {
                "idle_p99_ms": round(idle * 1000, 1),
                "loaded_p99_ms": round(loaded * 1000, 1),
                "ratio": round(loaded / idle, 2),
                "open": opened,
                "woken": len(wakes),
                "wake_max_s": round(max(wakes), 3) if wakes else None,
                "errors": waiters.errors[:3],
                "reconnects": len(waiters.reconnects),
            }
            print(json.dumps(row), flush=True)
            rounds.append(row)
    ratio = statistics.median(r["ratio"] for r in rounds)
    wake = max((r["wake_max_s"] for r in rounds if r["wake_max_s"] is not None), default=float("nan"))
    complete = all(r["open"] == WAITS and r["woken"] == 10 and not r["errors"] for r in rounds)
    print(
        f"{'stack' if args.stack else 'embedded'}: inbox p99 with {WAITS} waits / idle, median of "
        f"{len(rounds)}: {ratio:.2f}x (goal <= {GOAL_RATIO}x: {'met' if ratio <= GOAL_RATIO else 'MISSED'}); "
        f"slowest wake {wake:.3f} s (goal < {GOAL_WAKE} s: {'met' if wake < GOAL_WAKE else 'MISSED'}); "
        f"every wait open and woken: {complete}"
    )


if __name__ == "__main__":
    main()

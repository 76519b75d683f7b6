#!/usr/bin/env python
"""A small closed-loop HTTP load generator (for machines without wrk): C concurrent
keep-alive connections for D seconds; prints requests/s, latency percentiles, errors."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile  # noqa: E402


async def run(url: str, concurrency: int, duration: float, headers: dict[str, str]) -> None:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await client.get(url)
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    print(
        f"{len(latencies) / elapsed:.2f} req/s  p50 {percentile(latencies, 50):.1f}ms  p99 {percentile(latencies, 99):.1f}ms  "
        f"errors {errors} ({len(latencies)} requests in {elapsed:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    asyncio.run(run(args.url, args.concurrency, args.duration, headers))


if __name__ == "__main__":
    main()

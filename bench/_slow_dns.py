"""A stand-in resolver for ``bench/smtp.py --dns-latency-ms``: every lookup answers nothing
(like ``mail.authn.dns_offline``) after the delay a real resolver's round trip takes,
so the listener's SPF/DKIM checks wait as they would in production without any packet
leaving the machine."""

from __future__ import annotations

import os
import time
from typing import Any

DELAY_SECONDS = float(os.environ.get("BENCH_DNS_LATENCY_MS", "0")) / 1000


def resolve(name: str, qtype: str) -> list[Any]:
    time.sleep(DELAY_SECONDS)
    return []

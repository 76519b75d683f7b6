"""What GET /v1/messages/{id} costs for a 100 KB HTML-only newsletter: the first read (no
stored content: extracted inline and stored) and later reads (the stored MessageContent row).

Runs the real view through Django's test client on the database of DATABASE_URL (a fresh
PostgreSQL database is advised: ``url=$(scripts/pg.sh start /tmp/x-pg PORT)``).

Usage: DATABASE_URL=... python bench/content_read.py [--runs 200] [--html-kb 100]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import cleanup, django_setup, percentile, temp_dir  # noqa: E402


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--runs", type=int, default=200)
    args.add_argument("--html-kb", type=int, default=100)
    opts = args.parse_args()
    data_dir = temp_dir("content-read-")
    django_setup(
        os.environ.get("DATABASE_URL", f"sqlite:///{data_dir}/db.sqlite3"),
        data_dir,
        ALLOWED_HOSTS="testserver",
        CELERY_TASK_ALWAYS_EAGER="1",
    )

    from rest_framework.test import APIClient

    from bench.content import html_only, newsletter
    from directory.models import Account
    from directory.services import agent_create
    from mail.ingest import delivery_accept
    from mail.models import InboundDelivery, Message
    from mail.models import MessageContent as MessageContentRow

    agent, issued = agent_create(agent_id=f"reader{int(time.time())}", account=Account.objects.create(name="bench"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    raw = html_only(newsletter(opts.html_kb)).replace(b"agent@agents.example", agent.address.encode())
    ids = []
    for n in range(opts.runs):
        # Eager tasks: indexed, and its content extracted, on commit (deleted below). A header
        # of its own makes each a new delivery (the same bytes again are one redelivery).
        accepted = delivery_accept(
            raw=b"X-Bench-Seq: %d\r\n" % n + raw,
            source=InboundDelivery.Source.SMTP,
            envelope_recipients=[agent.address],
        )
        ids.append(Message.objects.get(delivery=accepted.delivery).pk)
    MessageContentRow.objects.filter(message_id__in=ids).delete()

    cpu: dict[str, list[float]] = {"first": [], "stored": []}

    def timed(message_id: str, phase: str) -> float:
        start, cpu_start = time.perf_counter(), time.process_time()
        response = client.get(f"/v1/messages/{message_id}")
        elapsed = (time.perf_counter() - start) * 1000
        # This process's CPU: what the request costs us, without the waits a loaded
        # machine adds (the wall times above are what a client sees).
        cpu[phase].append((time.process_time() - cpu_start) * 1000)
        assert response.status_code == 200, response.content[:200]
        assert response.json()["ExtractedText"], "the content was not extracted"
        return elapsed

    first = sorted(timed(i, "first") for i in ids)
    stored = sorted(timed(i, "stored") for i in ids)
    first_cpu, stored_cpu = sorted(cpu["first"]), sorted(cpu["stored"])
    print(
        json.dumps(
            {
                "raw_bytes": len(raw),
                "runs": opts.runs,
                "first_read_p50_ms": round(percentile(first, 50), 1),
                "first_read_p99_ms": round(percentile(first, 99), 1),
                "stored_read_p50_ms": round(percentile(stored, 50), 1),
                "stored_read_p99_ms": round(percentile(stored, 99), 1),
                "first_read_cpu_p50_ms": round(percentile(first_cpu, 50), 1),
                "stored_read_cpu_p50_ms": round(percentile(stored_cpu, 50), 1),
                "stored_read_cpu_p99_ms": round(percentile(stored_cpu, 99), 1),
                "load": round(os.getloadavg()[0], 1),
            },
            indent=2,
        )
    )
    cleanup(data_dir)


if __name__ == "__main__":
    main()

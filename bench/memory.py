#!/usr/bin/env python
"""Peak extra RSS while ingesting one 25 MB message (a ~18 MB attachment, base64).

Phases, each measured as the rise of the process's peak RSS (VmHWM, reset between phases
through /proc/self/clear_refs) over the RSS before the phase:
  baseline  a bare stdlib BytesParser(policy=compat32) parse of the same bytes
  accept    delivery_accept: store the bytes, commit the delivery (bytes already in memory,
            as they are in the SMTP listener)
  process   delivery_process: read back, parse, index (what a worker does)
Goal: <= 3x the message size of extra RSS. Streaming a 25 MB attachment download is
measured by bench/attachments_memory.py.

    python bench/memory.py [--mb 25]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cleanup, django_setup, machine, temp_dir  # noqa: E402

MB = 1024 * 1024


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    gc.collect()
    # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def measure(fn: object) -> int:
    reset_peak()
    before = status("VmRSS")
    fn()  # type: ignore[operator]
    return status("VmHWM") - before


def big_mail(to: str, total: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = to
    msg["Subject"] = "The quarterly data dump"
    msg["Message-ID"] = "<big@example.com>"
    msg.set_content("The file is attached.\n")
    # base64 grows the payload by 4/3 (plus line breaks): size the raw part to land on `total`.
    msg.add_attachment(
        os.urandom(int(total * 0.74)), maintype="application", subtype="octet-stream", filename="dump.bin"
    )
    return msg.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=25)
    args = parser.parse_args()
    data_dir = temp_dir("bench-memory-")
    try:
        django_setup(
            f"sqlite:///{data_dir}/db.sqlite3", data_dir, CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER="0"
        )
        from email import policy
        from email.parser import BytesParser

        from directory.models import Account
        from directory.services import agent_create
        from mail.ingest import delivery_accept, delivery_process
        from mail.models import Message

        agent, _ = agent_create(agent_id="memory", account=Account.objects.create(name="memory"))
        # Warm imports and connections with a small mail so they do not count.
        delivery_process(
            delivery_accept(
                raw=big_mail(agent.address, 20_000), source="smtp", envelope_recipients=[agent.address]
            ).delivery.id
        )

        raw = big_mail(agent.address, int(args.mb * MB))
        size = len(raw)
        baseline = measure(lambda: BytesParser(policy=policy.compat32).parsebytes(raw))
        ids: list[str] = []
        accept = measure(
            lambda: ids.append(delivery_accept(raw=raw, source="smtp", envelope_recipients=[agent.address]).delivery.id)
        )
        raw = b""  # the worker reads the bytes back from storage
        gc.collect()
        process = measure(lambda: delivery_process(ids[0]))
        assert Message.objects.filter(agent=agent, subject="The quarterly data dump").exists()
    finally:
        cleanup(data_dir)

    print(f"machine: {machine()}")
    print(f"message: {size / MB:.1f} MB")
    print(f"{'phase':<34} {'extra RSS MB':>12} {'x size':>7}")
    for name, value in (
        ("baseline compat32 parse", baseline),
        ("delivery_accept (store + commit)", accept),
        ("delivery_process (parse + index)", process),
    ):
        print(f"{name:<34} {value / MB:>12.1f} {value / size:>7.2f}")
    worst = max(accept, process)
    print(f"ratio worst pipeline phase / baseline parse: {worst / max(baseline, 1):.2f}")
    print(
        f"goal: <= 3x the message size ({3 * size / MB:.0f} MB): {worst / MB:.1f} MB -> {'MET' if worst <= 3 * size else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()

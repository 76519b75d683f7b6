"""Admin console response times with a seeded mailbox (goal: every page < 300 ms at 100k).

    DATABASE_URL=postgres://... python bench/admin.py [--messages 100000] [--repeat 15]

Seeds N messages (bulk insert, ~5% held or quarantined, a few labels) into a throwaway
database, then times the admin pages staff use, server-side through Django's test client.
Prints p50/p99 per page and, as the baseline of the same run, the same page on a
1,000-message mailbox, so the ratio shows how much the pages grow with the data.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_test_environment

    setup_test_environment()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        print(f"engine={connection.vendor} python={sys.version.split()[0]}")
        base = run(args.baseline, args.repeat)
        big = run(args.messages, args.repeat)
        print(f"\n{'page':<34}{'p50 ms':>9}{'p99 ms':>9}{'@' + str(args.baseline) + ' p50':>12}{'ratio':>8}")
        for name in big:
            p50, p99 = big[name]
            b50 = base[name][0]
            print(f"{name:<34}{p50:>9.1f}{p99:>9.1f}{b50:>12.1f}{p50 / b50:>8.2f}")
        worst = max(p99 for _, p99 in big.values())
        print(f"\nworst p99 at {args.messages:,} messages: {worst:.1f} ms (goal < 300 ms)")
    finally:
        teardown_databases(old, verbosity=0)
        del settings


def run(n: int, repeat: int) -> dict[str, tuple[float, float]]:
    import datetime as dt

    from django.contrib.auth.models import User
    from django.test import Client
    from django.utils import timezone

    from directory.services import agent_create
    from mail.models import Message, MessageLabel

    Message.objects.all().delete()
    User.objects.filter(username="bench").delete()
    agent, _ = agent_create(agent_id=f"bench{n}")
    now = timezone.now()
    started = time.monotonic()
    batch = []
    for i in range(n):
        disposition = "held" if i % 40 == 0 else ("quarantined" if i % 97 == 0 else "inbox")
        batch.append(
            Message(
                id=f"msg_{i:026d}",
                agent=agent,
                direction="inbound" if i % 5 else "outbound",
                disposition=disposition,
                from_header=f"Person {i % 500} <p{i % 500}@example.com>",
                from_name=f"Person {i % 500}",
                sender=f"p{i % 500}@example.com",
                to=[agent.address],
                subject=f"Invoice {i} for order {random.randint(1, 10**6)}",
                body_preview="Lorem ipsum dolor sit amet " * 8,
                received_at=now - dt.timedelta(seconds=n - i),
                sender_verified=i % 3 == 0,
                is_read=i % 2 == 0,
                thread_id=f"thr_{i // 3:026d}",
                size=5000,
            )
        )
        if len(batch) == 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)
    MessageLabel.objects.bulk_create(MessageLabel(message_id=f"msg_{i:026d}", name="urgent") for i in range(0, n, 50))
    print(f"seeded {n:,} messages in {time.monotonic() - started:.1f}s")

    User.objects.create_superuser("bench", "b@example.com", "x")
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    sample = f"msg_{n // 2:026d}".replace("_", "_5F")
    pages = {
        "message list": "/admin/mail/message/",
        "message list, search 'invoice 12'": "/admin/mail/message/?q=invoice+12",
        "message list, label filter": "/admin/mail/message/?label=urgent",
        "message list, unread inbound": "/admin/mail/message/?is_read__exact=0&direction__exact=inbound",
        "moderation queue": "/admin/mail/moderationitem/",
        "moderation queue, held": "/admin/mail/moderationitem/?disposition__exact=held",
        "message detail": f"/admin/mail/message/{sample}/change/",
        "dashboard (admin index)": "/admin/",
    }
    results = {}
    from django.core.cache import cache

    for name, url in pages.items():
        timings = []
        for _ in range(repeat):
            cache.clear()  # the dashboard caches for 30 s; measure the uncached page
            t = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings.sort()
        results[name] = (statistics.median(timings), timings[min(len(timings) - 1, int(len(timings) * 0.99))])
    return results


if __name__ == "__main__":
    main()

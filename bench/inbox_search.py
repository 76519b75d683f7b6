"""Benchmark GET /v1/inbox?q=... on PostgreSQL with and without the pg_trgm indexes.

    DATABASE_URL=postgres://... python bench/inbox_search.py --messages 200000

Inserts synthetic messages for a scratch agent with generate_series (fast), runs the
search query that ``MessageQuerySet.search`` emits through the API's queryset, and prints
EXPLAIN ANALYZE timings with the trigram indexes and with them disabled. Removes its rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from directory.services import agent_create  # noqa: E402
from mail.addresses import agent_for_address  # noqa: E402
from mail.models import Message  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    # A rare term (one message: a fragment of md5('4242')) and a common one.
    parser.add_argument("--q", action="append", default=None)
    args = parser.parse_args()
    assert connection.vendor == "postgresql", "needs DATABASE_URL pointing at PostgreSQL"
    agent = agent_for_address("bench-search@" + __import__("django.conf").conf.settings.MAIL_DOMAIN)
    if agent is None:
        agent, _ = agent_create(agent_id="bench-search")
    Message.objects.filter(agent=agent).delete()
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO mail_message (id, agent_id, direction, disposition, status, from_header, from_name, sender,
                "to", cc, bcc, reply_to, subject, body_preview, received_at, size, sha256, storage_key,
                internet_message_id, in_reply_to, "references", thread_id, idempotency_key, auto_submitted,
                is_read, archived, sender_verified, authentication, parse_status, quarantine_reason,
                provider_message_id, status_detail, created_at, updated_at)
            SELECT 'msg_bench' || lpad(i::text, 12, '0'), %s, 'inbound', 'inbox', 'received',
                'Person ' || i || ' <p' || i || '@example.com>', 'Person ' || i, 'p' || i || '@example.com',
                '[]', '[]', '[]', '[]', 'Subject invoice-' || i || ' ' || md5(i::text), md5((i * 7)::text),
                now() - (i || ' seconds')::interval, 1000, '', '', '', '', '', '', '', '',
                false, false, false, '{}', 'ok', '', '', '', now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [agent.pk, args.messages],
        )
        cursor.execute("ANALYZE mail_message")
    print(f"inserted {args.messages} messages in {time.monotonic() - started:.1f}s")
    for q in args.q or ["4de28b2c83", "invoice-42"]:
        explain(agent, q)
    Message.objects.filter(agent=agent).delete()


def explain(agent: object, q: str) -> None:
    qs = Message.objects.for_agent(agent).inbox_filtered().search(q).in_listing_order()[:25]
    sql, params = qs.query.sql_with_params()
    for label, settings_sql in (
        ("with trigram indexes", []),
        ("without (indexes disabled)", ["SET LOCAL enable_bitmapscan = off"]),
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in settings_sql:
                cursor.execute(statement)
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT TEXT) {sql}", params)
            plan = [row[0] for row in cursor.fetchall()]
        print(f"q={q!r} {label}: {plan[-1].strip()}  uses trgm: {any('trgm' in line for line in plan)}")


if __name__ == "__main__":
    main()

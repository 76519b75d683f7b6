from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from mail.sources.sqs import sqs_client, sqs_poll


class Command(BaseCommand):
    help = "Long-poll SES_SQS_QUEUE_URL and feed SES receipt notifications into the ingestion pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue-url", default=settings.SES_SQS_QUEUE_URL)
        parser.add_argument("--wait", type=int, default=settings.SES_SQS_WAIT_SECONDS, help="long-poll seconds (0-20)")
        parser.add_argument("--once", action="store_true", help="one receive call, then exit (tests, cron)")

    def handle(self, *args: Any, queue_url: str, wait: int, once: bool, **options: Any) -> None:
        if not queue_url:
            raise CommandError("Set SES_SQS_QUEUE_URL (or pass --queue-url).")
        client = sqs_client()
        stopping = False

        def stop(*_: Any) -> None:
            # Finish the batch in hand (each message is deleted only once it is durable).
            nonlocal stopping
            stopping = True

        if not once:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            self.stdout.write(f"consuming {queue_url}")
        while True:
            if not once:
                # A worker that lives for days must not hold a connection the database dropped.
                close_old_connections()
            counts = sqs_poll(
                client=client,
                queue_url=queue_url,
                wait_seconds=min(max(wait, 0), 20),
                visibility_seconds=settings.SES_SQS_VISIBILITY_SECONDS,
            )
            if counts.received or once:
                self.stdout.write(
                    f"received={counts.received} accepted={counts.accepted} duplicate={counts.duplicate} "
                    f"skipped={counts.skipped} failed={counts.failed}"
                )
            if once or stopping:
                return

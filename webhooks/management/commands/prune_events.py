"""Delete events (and their deliveries) older than WEBHOOKS_EVENT_RETENTION_DAYS.

Cursors older than the retention are answered with 410 cursor_expired (webhooks/events.py),
so pruning never silently skips events for a slow reader."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from webhooks.services import events_prune


class Command(BaseCommand):
    help = "Delete events older than WEBHOOKS_EVENT_RETENTION_DAYS."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = events_prune()
        self.stdout.write(f"Deleted {deleted} events.")

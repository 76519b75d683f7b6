from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from mail.sources.backfill import Checkpoint, backfill_object, backfill_objects

CHECKPOINT_EVERY = 50


def _since(value: str) -> dt.datetime:
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = dt.datetime.combine(day, dt.time())
    if parsed is None:
        raise CommandError(f"--since {value!r}: expected YYYY-MM-DD or an ISO datetime")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = (
        "Re-ingest raw mail objects from the mail storage (S3 or local) into the index. "
        "Skips objects a delivery already points at; resumable from a checkpoint. "
        "Recipients come from the Delivered-To/X-Original-To or To/Cc headers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prefix", default="", help="only keys under this prefix (relative to the mail storage)")
        parser.add_argument("--since", type=_since, help="only objects modified at or after this date/time (UTC)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be ingested; write nothing")
        parser.add_argument("--checkpoint", default=settings.BACKFILL_CHECKPOINT, help="checkpoint file")
        parser.add_argument("--restart", action="store_true", help="ignore the checkpoint and start from the first key")

    def handle(
        self,
        *args: Any,
        prefix: str,
        since: dt.datetime | None,
        dry_run: bool,
        checkpoint: str,
        restart: bool,
        **options: Any,
    ) -> None:
        mark = Checkpoint(Path(checkpoint), prefix)
        after = "" if restart else mark.load()
        if after:
            self.stdout.write(f"resuming after {after} (checkpoint {checkpoint}; --restart to start over)")
        counts: Counter[str] = Counter()
        progress = tqdm(
            backfill_objects(prefix=prefix, since=since, after_key=after), unit="obj", file=self.stderr, disable=None
        )
        last = ""
        for obj in progress:
            counts[backfill_object(key=obj.key, dry_run=dry_run)] += 1
            last = obj.key
            progress.set_postfix(
                new=counts["new"], duplicate=counts["duplicate"], quarantined=counts["quarantined"], refresh=False
            )
            if not dry_run and sum(counts.values()) % CHECKPOINT_EVERY == 0:
                mark.save(last)
        if last and not dry_run:
            mark.save(last)
        verb = "would add" if dry_run else "new"
        self.stdout.write(
            f"{verb}={counts['new']} duplicate={counts['duplicate']} quarantined={counts['quarantined']} skipped={counts['skipped']}"
        )

"""Re-ingest raw objects from the mail storage (S3 or local) after an outage or a restore.

Each object goes through ``delivery_accept_stored(source="backfill")`` unless some delivery
(or message) already points at its key, so a second run adds nothing. Backfill is the one
place where envelope recipients come from *headers* (Delivered-To / X-Original-To, else
To + Cc): the envelope of a message we never recorded is gone. A Bcc recipient not named in
those headers is therefore not reached by a backfill.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage

from mail import packs
from mail.ingest import delivery_accept_stored, delivery_process
from mail.models import InboundDelivery, Message
from mail.storage import mail_storage, raw_open

# SES writes this object when a rule's S3 action is created; it is not mail.
SES_SETUP_KEY = "AMAZON_SES_SETUP_NOTIFICATION"


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: dt.datetime


def storage_objects(storage: Storage, prefix: str = "") -> Iterator[StoredObject]:
    """Every object under ``prefix`` in key order (the order a checkpoint resumes from)."""
    prefix = prefix.lstrip("/")
    if isinstance(storage, FileSystemStorage):
        root = Path(storage.location)
        found: list[StoredObject] = []
        for directory, _, files in os.walk(root):
            for name in files:
                path = Path(directory) / name
                key = path.relative_to(root).as_posix()
                modified = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
                if key.startswith(packs.PREFIX) and key.endswith(packs.SUFFIX):
                    # A pack holds a batch: each live record is an object.
                    found.extend(StoredObject(k, modified) for k in packs.pack_records(str(path), key) if k.startswith(prefix))
                elif key.startswith(prefix):
                    found.append(StoredObject(key, modified))
        yield from sorted(found, key=lambda o: o.key)
        return
    # django-storages S3Storage: list the bucket under its location, keys back relative to it.
    location = str(getattr(storage, "location", "")).strip("/")
    base = f"{location}/" if location else ""
    for obj in storage.bucket.objects.filter(Prefix=base + prefix):  # type: ignore[attr-defined]  # S3Storage's boto3 bucket
        if not obj.key.endswith("/"):
            yield StoredObject(obj.key[len(base) :], obj.last_modified)


def header_recipients(raw_head: bytes) -> tuple[list[str], str]:
    """(envelope recipients, envelope sender) as well as headers can tell."""
    headers = BytesHeaderParser().parsebytes(raw_head)
    delivered = headers.get_all("Delivered-To", []) + headers.get_all("X-Original-To", [])
    fields = delivered or headers.get_all("To", []) + headers.get_all("Cc", [])
    seen: dict[str, None] = {}
    for _, address in getaddresses([str(f) for f in fields]):
        if "@" in address:
            seen.setdefault(address.strip().lower(), None)
    return_path = getaddresses([str(headers.get("Return-Path", ""))])
    return list(seen), (return_path[0][1] if return_path else "")


def key_known(key: str) -> bool:
    return InboundDelivery.objects.filter(storage_key=key).exists() or Message.objects.filter(storage_key=key).exists()


def backfill_object(*, key: str, dry_run: bool = False) -> str:
    """Ingest one stored object; returns "new", "duplicate", "quarantined" or "skipped"."""
    if key.rsplit("/", 1)[-1] == SES_SETUP_KEY:
        return "skipped"
    if key_known(key):
        return "duplicate"
    with raw_open(key) as fh:
        head = fh.read(settings.MAX_HEADER_BYTES)
    recipients, envelope_from = header_recipients(head)
    if not recipients:
        return "skipped"
    if dry_run:
        return "new"
    accepted = delivery_accept_stored(
        storage_key=key,
        source=InboundDelivery.Source.BACKFILL,
        external_id=f"backfill:{key}",
        envelope_recipients=recipients,
        envelope_from=envelope_from,
    )
    if not accepted.created:
        return "duplicate"
    # Processed here rather than only queued, so the counts say what happened; the queued
    # task finds it processed and does nothing.
    delivery = delivery_process(accepted.delivery.id)
    return "quarantined" if "quarantined" in delivery.outcome.values() else "new"


@dataclass
class Checkpoint:
    """The last key done, per prefix: a rerun after a crash starts after it."""

    path: Path
    prefix: str

    def load(self) -> str:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return ""
        return str(data.get("last_key", "")) if data.get("prefix") == self.prefix else ""

    def save(self, last_key: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"prefix": self.prefix, "last_key": last_key}))
        tmp.replace(self.path)  # atomic: a crash never leaves half a checkpoint


def backfill_objects(
    *, prefix: str = "", since: dt.datetime | None = None, after_key: str = ""
) -> Iterator[StoredObject]:
    for obj in storage_objects(mail_storage(), prefix):
        if after_key and obj.key <= after_key:
            continue
        if since and obj.modified < since:
            continue
        yield obj

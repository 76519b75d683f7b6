"""Raw storage behind one interface (``RawStore``, mail/rawstore/base.py): a local
implementation (pack files) and an S3 one (an object per mail), chosen once from
``MAIL_STORAGE``. Everything that stores, reads, moves, walks or deletes raw MIME or
attachment objects goes through ``rawstore()``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver

from mail.rawstore.base import ARCHIVE, MAIL, ObjectStat, RawStore, StoredObject
from mail.rawstore.local import LocalRawStore, raw_key
from mail.rawstore.s3 import S3RawStore

__all__ = [
    "ARCHIVE",
    "MAIL",
    "LocalRawStore",
    "ObjectStat",
    "RawStore",
    "S3RawStore",
    "StoredObject",
    "raw_key",
    "rawstore",
]

_chosen: RawStore | None = None
_CHOSEN_BY = frozenset({"MAIL_STORAGE", "MAIL_STORAGE_PACKS", "STORAGES"})


def rawstore() -> RawStore:
    """The raw store of this process, made once from the settings."""
    global _chosen
    if _chosen is None:
        _chosen = _choose()
    return _chosen


def _choose() -> RawStore:
    mail, archive = storages["default"], storages["archive"]
    if settings.MAIL_STORAGE == "s3":
        return S3RawStore(mail, archive)
    # Storage.path is the public way to a local storage's folder.
    return LocalRawStore(
        Path(mail.path("")), Path(archive.path("")), use_packs=getattr(settings, "MAIL_STORAGE_PACKS", True)
    )


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _chosen
    if setting in _CHOSEN_BY:
        _chosen = None

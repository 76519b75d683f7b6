"""Where raw MIME lives: the raw store (``mail.rawstore``), local files in embedded mode and
S3 in production, chosen once from ``MAIL_STORAGE``. These functions are the calls the rest
of the code makes; each takes any key a row can hold (a pack record, an older
content-addressed file, an object SES wrote)."""

from __future__ import annotations

from typing import IO

from django.core.files.storage import Storage, storages

from mail.rawstore import raw_key, rawstore

__all__ = ["raw_key"]


def mail_storage() -> Storage:
    return storages["default"]


def archive_storage() -> Storage:
    return storages["archive"]


def raw_store(raw: bytes, *, sync: bool = True) -> tuple[str, str]:
    """Store one mail; returns (key, sha256).

    ``sync=False``: the caller stores several objects and then makes them all durable at
    once with ``raw_sync`` before it commits anything that points at them."""
    ((key, sha),) = rawstore().store_batch([raw])
    if sync:
        raw_sync([key])
    return key, sha


def raw_store_early(raw: bytes) -> tuple[str, str] | None:
    """Store one mail now, not yet durable, where a store's writes gain from running in
    parallel (S3); None where the caller's batch stores it better (local packs)."""
    store = rawstore()
    return store.store_batch([raw])[0] if store.writes_in_parallel else None


def raws_store(raws: list[bytes]) -> list[tuple[str, str]]:
    """Store a batch (not yet durable: ``raw_sync`` its keys). (key, sha256) per raw."""
    return rawstore().store_batch(raws)


def raw_discard(key: str) -> None:
    rawstore().discard(key)


def raw_sync(keys: list[str]) -> None:
    """Make stored objects durable: the caller commits a delivery row next and answers 250
    (or deletes the SQS message), which must survive a power cut as the committed row does."""
    rawstore().sync(keys)


def raw_open(key: str, *, archived: bool = False) -> IO[bytes]:
    return rawstore().open(key, archived=archived)


def raw_read(key: str, *, archived: bool = False) -> bytes:
    with raw_open(key, archived=archived) as fh:
        return fh.read()


def raw_exists(key: str, *, archived: bool = False) -> bool:
    return rawstore().exists(key, archived=archived)


def raw_move(key: str, *, to_archive: bool, keep_source: bool = False) -> None:
    rawstore().move(key, to_archive=to_archive, keep_source=keep_source)


def raw_delete(key: str) -> None:
    rawstore().delete(key)


def raw_prune(key: str, *, keep_mail: bool, keep_archive: bool) -> None:
    rawstore().prune(key, keep_mail=keep_mail, keep_archive=keep_archive)

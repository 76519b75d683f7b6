"""The raw store's interface: what ingest, sending, archiving, deleting, backfill and
attachments ask of the storage of raw MIME and attachment objects.

Two sides: the mail side (where a message's bytes live) and the archive side (where they
move while the message is archived). Raw mail is stored in batches under keys the store
chooses (one layout per store); attachment objects are stored under names the caller
chooses (``parts/<sha256>``, ``uploads/<id>``) on the mail side.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

MAIL, ARCHIVE = "mail", "archive"
# Where named objects live on the mail side: attachment bytes, never raw mail. A walk
# skips them: a part's bytes are a sender's, and may look like a mail to anyone.
NAMED_PREFIXES = ("parts/", "uploads/")


def is_raw_key(key: str) -> bool:
    return not key.startswith(NAMED_PREFIXES)


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: dt.datetime


@dataclass(frozen=True)
class ObjectStat:
    size: int
    content_type: str | None  # None where the store keeps no type (local files)


def other_side(side: str) -> str:
    return ARCHIVE if side == MAIL else MAIL


class RawStore(ABC):
    # True where each write is a round trip worth doing in parallel threads before a group
    # commit (S3); False where appending to the group's batch is cheaper (local packs).
    writes_in_parallel = False
    # True where a client uploads straight to the store (presigned POST) and nobody tells
    # us it finished: an upload is found by looking (``object_stat``).
    direct_uploads = False
    # True where a download is a redirect to a short-lived URL of the store (``download_url``).
    direct_downloads = False

    # --- Raw mail -----------------------------------------------------------------------

    @abstractmethod
    def store_batch(self, raws: list[bytes]) -> list[tuple[str, str]]:
        """Store a batch on the mail side, not yet durable (``sync`` its keys before
        committing anything that points at them). (key, sha256) per raw, in order."""

    @abstractmethod
    def sync(self, keys: list[str]) -> None:
        """Make stored objects durable (a committed row and a 250 follow)."""

    @abstractmethod
    def discard(self, key: str) -> None:
        """Remove a just-stored object nothing points at (a redelivery's second copy),
        where no one else can share it."""

    @abstractmethod
    def walk(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every raw object on the mail side under ``prefix``, in key order (the order a
        backfill checkpoint resumes from); named objects (``NAMED_PREFIXES``) are not."""

    @abstractmethod
    def _open(self, side: str, key: str) -> IO[bytes]:
        """Raises FileNotFoundError when the object is not on that side."""

    @abstractmethod
    def _exists(self, side: str, key: str) -> bool: ...

    @abstractmethod
    def _delete(self, side: str, key: str) -> None: ...

    @abstractmethod
    def _copy(self, key: str, source: str, target: str) -> None:
        """Copy the object from one side to the other, whole or not at all."""

    def open(self, key: str, *, archived: bool = False) -> IO[bytes]:
        """A stream over the bytes, from where the message says they are, falling back to
        the other side: an object shared by several recipients' messages may sit on
        either while one of them is archived and another is not."""
        preferred = ARCHIVE if archived else MAIL
        try:
            # Opened first, asked later: the usual case costs no existence check (on S3, a
            # HEAD request per message read).
            return self._open(preferred, key)
        except FileNotFoundError:
            if not self._exists(other_side(preferred), key):
                raise
        return self._open(other_side(preferred), key)

    def exists(self, key: str, *, archived: bool = False) -> bool:
        return self._exists(ARCHIVE if archived else MAIL, key)

    def move(self, key: str, *, to_archive: bool, keep_source: bool = False) -> None:
        """Copy to the other side, then delete the source (unless another message still
        needs it there). Safe to repeat: after a crash the next call finds the copy and
        only deletes."""
        source, target = (MAIL, ARCHIVE) if to_archive else (ARCHIVE, MAIL)
        if not self._exists(target, key):
            self._copy(key, source, target)
        if not keep_source and self._exists(source, key):
            self._delete(source, key)

    def delete(self, key: str) -> None:
        for side in (MAIL, ARCHIVE):
            if self._exists(side, key):
                self._delete(side, key)

    def prune(self, key: str, *, keep_mail: bool, keep_archive: bool) -> None:
        """Drop the copy of a shared object that no remaining message needs (one left
        behind by archiving with keep_source), but never the last copy."""
        if not keep_mail and self._exists(ARCHIVE, key) and self._exists(MAIL, key):
            self._delete(MAIL, key)
        if not keep_archive and self._exists(MAIL, key) and self._exists(ARCHIVE, key):
            self._delete(ARCHIVE, key)

    # --- Named objects on the mail side (attachments) -------------------------------------

    @abstractmethod
    def object_put(self, key: str, content: bytes | IO[bytes], size: int) -> None:
        """Store a content-addressed object (its name is its bytes' hash) of ``size``
        bytes, from bytes or a file at its start; skipped when it is already there whole.
        Not synced."""

    @abstractmethod
    def object_save(self, key: str, content: IO[bytes]) -> None:
        """Store (or replace) a named object from a file at its start."""

    @abstractmethod
    def object_open(self, key: str, *, size: int | None = None) -> IO[bytes]:
        """A stream over a named object. FileNotFoundError when it is missing, or (where
        the store can tell without a request) when it does not have ``size`` bytes."""

    @abstractmethod
    def object_stat(self, key: str) -> ObjectStat | None:
        """Size (and type, where kept) of a named object; None when it is missing."""

    @abstractmethod
    def object_delete(self, key: str) -> None:
        """Delete a named object; nothing when it is missing."""

    def upload_form(self, key: str, *, size: int, content_type: str, expires_in: int) -> tuple[str, dict[str, str]]:
        """(url, form fields) of a direct upload that pins size and type."""
        raise NotImplementedError(f"{type(self).__name__} takes no direct uploads")

    def download_url(self, key: str, *, content_type: str, disposition: str, expires_in: int) -> str:
        """A short-lived URL that serves the object with these headers."""
        raise NotImplementedError(f"{type(self).__name__} serves no direct downloads")

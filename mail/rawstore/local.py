"""The raw store on local files (``MAIL_STORAGE=file``, embedded mode).

Raw mail is stored in pack files, one per batch (``mail.packs``; docs/decisions/0010-pack-files.md
has the measured gain). Rows written before every path stored packs point at
content-addressed files (``<sha256[:2]>/<sha256>.eml``): those are still read, moved,
walked and deleted as plain files. The archive side keeps every object as a plain file
named by its key. Attachment objects are plain files named by their key.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings

from mail import packs
from mail.rawstore.base import ARCHIVE, MAIL, ObjectStat, RawStore, StoredObject, is_raw_key

_CHUNK = 64 * 1024


def raw_key(sha256: str) -> str:
    """The content-addressed layout: what sent mail and the SMTP listener's checked mail
    used before every local path stored packs (and what ``packs=False`` stores)."""
    return f"{sha256[:2]}/{sha256}.eml"


class LocalRawStore(RawStore):
    def __init__(self, mail_root: Path, archive_root: Path, *, use_packs: bool = True) -> None:
        self._roots = {MAIL: os.path.abspath(mail_root), ARCHIVE: os.path.abspath(archive_root)}
        self._packs = use_packs

    def _path(self, side: str, key: str) -> str:
        root = self._roots[side]
        path = os.path.normpath(os.path.join(root, key))
        if ".." in key.split("/") or not path.startswith(root + os.sep):
            raise ValueError(f"not a key inside the storage: {key!r}")
        return path

    def _located(self, side: str, key: str) -> tuple[str, int, int] | None:
        """Where a pack record's bytes are on the mail side (the archive side holds its
        copy as a plain file named by the key)."""
        if side != MAIL or not packs.is_pack_key(key):
            return None
        pack, offset, length = packs.split_key(key)
        return self._path(MAIL, pack), offset, length

    # --- Raw mail -----------------------------------------------------------------------

    def store_batch(self, raws: list[bytes]) -> list[tuple[str, str]]:
        if not raws:
            return []
        shas = [hashlib.sha256(raw).hexdigest() for raw in raws]
        if self._packs:
            keys = packs.pack_write(lambda key: self._path(MAIL, key), raws)
        else:
            keys = [raw_key(sha) for sha in shas]
            for key, raw in zip(keys, raws, strict=True):
                _local_write(self._path(MAIL, key), raw, len(raw))
        return list(zip(keys, shas, strict=True))

    def sync(self, keys: list[str]) -> None:
        """With ``MAIL_STORAGE_FSYNC``: one ``syncfs`` of the storage's file system for the
        whole batch (Linux), which costs about what a single fsync does, where each file and
        its folder synced one by one cost two fsyncs per mail (bench/HISTORY.md, fourth session); elsewhere,
        that."""
        if not keys or not settings.MAIL_STORAGE_FSYNC:
            return
        paths = list(dict.fromkeys(self._file_of(key) for key in keys))
        if _syncfs is not None:
            _sync_path(os.path.dirname(paths[0]), _syncfs_checked)
            return
        for path in paths:
            _sync_path(path, os.fsync)
        # A new folder is an entry in its parent: every folder up to the storage's own.
        root = self._roots[MAIL]
        folders: set[str] = set()
        for path in paths:
            folder = os.path.dirname(path)
            while folder not in folders and len(folder) >= len(root):
                folders.add(folder)
                folder = os.path.dirname(folder)
        for folder in sorted(folders):
            _sync_path(folder, os.fsync)

    def _file_of(self, key: str) -> str:
        located = self._located(MAIL, key)
        return located[0] if located else self._path(MAIL, key)

    def discard(self, key: str) -> None:
        # A content-addressed file may be another delivery's: only pack records go.
        if packs.is_pack_key(key):
            self._delete(MAIL, key)

    def walk(self, prefix: str = "") -> Iterator[StoredObject]:
        prefix = prefix.lstrip("/")
        root = Path(self._roots[MAIL])
        found: list[StoredObject] = []
        for directory, _, files in os.walk(root):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # a write cut short by a crash (``_atomic_write``)
                path = Path(directory) / name
                key = path.relative_to(root).as_posix()
                modified = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
                if key.startswith(packs.PREFIX) and key.endswith(packs.SUFFIX):
                    # A pack holds a batch: each live record is an object.
                    found.extend(
                        StoredObject(k, modified) for k in packs.pack_records(str(path), key) if k.startswith(prefix)
                    )
                elif key.startswith(prefix) and is_raw_key(key):
                    found.append(StoredObject(key, modified))
        yield from sorted(found, key=lambda o: o.key)

    def _open(self, side: str, key: str) -> IO[bytes]:
        located = self._located(side, key)
        if located:
            # A RawIOBase: read, seek and close, which is all a reader of IO[bytes] here uses.
            return cast(IO[bytes], packs.record_open(*located))
        try:
            return open(self._path(side, key), "rb")  # noqa: SIM115 - the caller closes it
        except (NotADirectoryError, IsADirectoryError):
            raise FileNotFoundError(key) from None

    def _exists(self, side: str, key: str) -> bool:
        located = self._located(side, key)
        return packs.record_live(*located) if located else os.path.isfile(self._path(side, key))

    def _delete(self, side: str, key: str) -> None:
        located = self._located(side, key)
        if located:
            packs.record_remove(*located)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(side, key))

    def _copy(self, key: str, source: str, target: str) -> None:
        """A pack record restored from the archive is written back into its place in the
        pack. The copy is durable before the caller deletes the source."""
        with self._open(source, key) as fh:
            located = self._located(target, key)
            if located:
                packs.record_restore(*located, fh)
            else:
                _atomic_write(self._path(target, key), fh, durable=settings.MAIL_STORAGE_FSYNC)

    # --- Named objects --------------------------------------------------------------------

    def object_put(self, key: str, content: bytes | IO[bytes], size: int) -> None:
        _local_write(self._path(MAIL, key), content, size)

    def object_save(self, key: str, content: IO[bytes]) -> None:
        _atomic_write(self._path(MAIL, key), content)

    def object_open(self, key: str, *, size: int | None = None) -> IO[bytes]:
        fh = self._open(MAIL, key)
        if size is not None and os.fstat(fh.fileno()).st_size != size:
            # Cut short by a crash before it reached the disk: never served.
            fh.close()
            raise FileNotFoundError(f"{key}: not {size} bytes")
        return fh

    def object_stat(self, key: str) -> ObjectStat | None:
        try:
            return ObjectStat(os.stat(self._path(MAIL, key)).st_size, None)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def object_delete(self, key: str) -> None:
        self._delete(MAIL, key)


def _local_write(path: str, content: bytes | IO[bytes], size: int) -> None:
    """A content-addressed object, written whole or not at all. One already there with the
    right size is the same bytes (its name is their hash); one of another size was cut
    short (a crash before it reached the disk) and is written again. Durable only after
    ``sync``."""
    try:
        if os.stat(path).st_size == size:
            return
    except FileNotFoundError:
        pass
    _atomic_write(path, content)


def _atomic_write(path: str, content: bytes | IO[bytes], *, durable: bool = False) -> None:
    """Into a temporary file beside ``path``, then renamed over it: a process killed
    mid-write leaves no truncated object under the name (FileSystemStorage.save writes in
    place). ``durable``: the file and its folder are synced before this returns."""
    directory = os.path.dirname(path)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            if isinstance(content, bytes):
                packs.write_all(fd, content)
            else:
                # Small chunks: an upload or a part streams through without being held.
                while chunk := content.read(_CHUNK):
                    packs.write_all(fd, chunk)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        # A full disk must not leave a stray temporary file per failed write.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if durable:
        _sync_path(directory, os.fsync)


def _sync_path(path: str, sync: Any) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        sync(fd)
    finally:
        os.close(fd)


def _syncfs_checked(fd: int) -> None:
    if _syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"syncfs: {os.strerror(error)}")


def _libc_syncfs() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):  # not Linux/glibc
        return None


_syncfs = _libc_syncfs()

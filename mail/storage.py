"""Where raw MIME lives: objects in the mail storage, moved to the archive storage while a
message is archived. Local files in embedded mode, S3 in production.

An object is content-addressed (``raw_store``: sent mail, the SMTP listener's checked mail,
S3 mode) or, for a batch accepted into local storage, a record of a pack file
(``raws_store``, ``mail.packs``). Every function here takes either kind of key."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import threading
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage, storages

from mail import packs


def mail_storage() -> Storage:
    return storages["default"]


def archive_storage() -> Storage:
    return storages["archive"]


def raw_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}.eml"


def raw_store(raw: bytes, *, sync: bool = True) -> tuple[str, str]:
    """Store bytes under their content address; returns (key, sha256). Idempotent.

    ``sync=False``: the caller stores several objects and then makes them all durable at
    once with ``raw_sync`` before it commits anything that points at them."""
    sha = hashlib.sha256(raw).hexdigest()
    key = raw_key(sha)
    object_store(key, raw, len(raw))
    if sync:
        raw_sync([key])
    return key, sha


def object_store(key: str, content: bytes | IO[bytes], size: int) -> None:
    """Store a content-addressed object (its name is its bytes' hash: raw MIME, parts of
    received mail) of ``size`` bytes, from bytes or a file at its start. Skipped when the
    object is already there whole; locally written beside its name and renamed into
    place (``_local_write``). Not synced."""
    storage = mail_storage()
    if isinstance(storage, FileSystemStorage):
        _local_write(storage.path(key), content, size)
    elif not storage.exists(key):  # an S3 object appears whole or not at all
        storage.save(key, ContentFile(content) if isinstance(content, bytes) else File(content))


def raws_store(raws: list[bytes]) -> list[tuple[str, str]]:
    """Store a batch (not yet durable: ``raw_sync`` its keys). In local storage the batch
    is one pack file, not a new file per mail (mail.packs says why); in S3 one object
    each. Returns (key, sha256) per raw, in order."""
    storage = mail_storage()
    if not raws:
        return []
    if not isinstance(storage, FileSystemStorage):
        return [raw_store(raw, sync=False) for raw in raws]
    keys = packs.pack_write(storage.path, raws)
    return [(key, hashlib.sha256(raw).hexdigest()) for key, raw in zip(keys, raws, strict=True)]


def raw_discard(key: str) -> None:
    """Remove an object nothing points at (a redelivery's second copy). A content-
    addressed object may be someone else's: only pack records are removed."""
    if packs.is_pack_key(key):
        _delete(mail_storage(), key)


def raw_sync(keys: list[str]) -> None:
    """Make stored objects durable: the caller commits a delivery row next and answers 250
    (or deletes the SQS message), which must survive a power cut as the committed row does.

    S3 has nothing to do (an object is durable when its PUT returns). File storage with
    ``MAIL_STORAGE_FSYNC``: one ``syncfs`` of the storage's file system for the whole batch
    (Linux), which costs about what a single fsync does, where each file and its folder
    synced one by one cost two fsyncs per mail (bench/README.md); elsewhere, that."""
    storage = mail_storage()
    if not keys or not settings.MAIL_STORAGE_FSYNC or not isinstance(storage, FileSystemStorage):
        return
    paths = list(dict.fromkeys(_file_of(storage, key) for key in keys))
    if _syncfs is not None:
        _sync_path(os.path.dirname(paths[0]), _syncfs_checked)
        return
    for path in paths:
        _sync_path(path, os.fsync)
    # A new folder is an entry in its parent: every folder up to the storage's own.
    root = os.path.normpath(storage.path(""))
    folders: set[str] = set()
    for path in paths:
        folder = os.path.dirname(path)
        while folder not in folders and len(folder) >= len(root):
            folders.add(folder)
            folder = os.path.dirname(folder)
    for folder in sorted(folders):
        _sync_path(folder, os.fsync)


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


def _local_write(path: str, content: bytes | IO[bytes], size: int) -> None:
    """A local object, written whole or not at all: into a temporary file, then renamed.

    ``FileSystemStorage.save`` writes in place, so a process killed mid-write left a
    truncated object that the next ``exists()`` check trusted; it was also half of the
    SMTP listener's time per mail (directory checks, a file lock, chunked writes). An
    object already there with the right size is the same bytes (its name is their hash);
    one of another size was cut short (a crash before it reached the disk) and is written
    again. Durable only after ``raw_sync``."""
    try:
        if os.stat(path).st_size == size:
            return
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            packs.write_all(fd, content)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        # A full disk must not leave a stray temporary file per failed mail.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _storage_for(archived: bool) -> Storage:
    return archive_storage() if archived else mail_storage()


def _pack_path(storage: Storage, key: str) -> tuple[str, int, int] | None:
    """Where a pack record's bytes are, when ``storage`` holds them in a pack: the mail
    storage, local. (The archive storage holds its copy as a plain object named by the key.)"""
    if not packs.is_pack_key(key) or storage is not mail_storage() or not isinstance(storage, FileSystemStorage):
        return None
    pack, offset, length = packs.split_key(key)
    return storage.path(pack), offset, length


def _file_of(storage: Storage, key: str) -> str:
    """The local file that holds an object: its pack, for a pack record."""
    located = _pack_path(storage, key)
    return located[0] if located else storage.path(key)


def _open(storage: Storage, key: str) -> IO[bytes]:
    located = _pack_path(storage, key)
    return packs.record_open(*located) if located else storage.open(key, "rb")


def _exists(storage: Storage, key: str) -> bool:
    located = _pack_path(storage, key)
    return packs.record_live(*located) if located else storage.exists(key)


def _delete(storage: Storage, key: str) -> None:
    located = _pack_path(storage, key)
    if located:
        packs.record_remove(*located)
    else:
        storage.delete(key)


def raw_open(key: str, *, archived: bool = False) -> IO[bytes]:
    """Open from where the message says its bytes are, falling back to the other storage:
    an object shared by several recipients' messages may sit in either while one of
    them is archived and another is not."""
    preferred, other = _storage_for(archived), _storage_for(not archived)
    try:
        # Opened first, asked later: the usual case costs no existence check (on S3, a
        # HEAD request per message read). Both storages raise FileNotFoundError.
        return _open(preferred, key)
    except FileNotFoundError:
        if not _exists(other, key):
            raise
    return _open(other, key)


def raw_read(key: str, *, archived: bool = False) -> bytes:
    with raw_open(key, archived=archived) as fh:
        return fh.read()


def raw_exists(key: str, *, archived: bool = False) -> bool:
    return _exists(_storage_for(archived), key)


def raw_move(key: str, *, to_archive: bool, keep_source: bool = False) -> None:
    """Copy the object to the other storage, then delete the source (unless another
    message still needs it there). Safe to repeat: after a crash the next call finds the
    copy and only deletes. A pack record restored from the archive is written back into
    its place in the pack."""
    source, target = (mail_storage(), archive_storage()) if to_archive else (archive_storage(), mail_storage())
    if not _exists(target, key):
        with _open(source, key) as fh:
            located = _pack_path(target, key)
            if located:
                packs.record_restore(*located, fh)
            else:
                target.save(key, fh if isinstance(fh, File) else File(fh, name=os.path.basename(key)))
    if not keep_source and _exists(source, key):
        _delete(source, key)


def raw_delete(key: str) -> None:
    for storage in (mail_storage(), archive_storage()):
        if _exists(storage, key):
            _delete(storage, key)


def raw_prune(key: str, *, keep_mail: bool, keep_archive: bool) -> None:
    """Drop the copy of a shared object that no remaining message needs (one left behind
    by archiving with keep_source), but never the last copy."""
    mail, archive = mail_storage(), archive_storage()
    if not keep_mail and _exists(archive, key) and _exists(mail, key):
        _delete(mail, key)
    if not keep_archive and _exists(mail, key) and _exists(archive, key):
        _delete(archive, key)

"""Local storage: a content-addressed object (an attachment part) is written whole (a
temporary file, then a rename), idempotent, and a truncated one left by a crash of an
older writer is repaired, not trusted; raw MIME goes into pack files, and with
MAIL_STORAGE_FSYNC it is synced to disk before anything that points at it commits."""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from mail import packs
from mail.ingest import Arrival, deliveries_accept
from mail.models import InboundDelivery
from mail.rawstore import local as storage
from mail.rawstore import rawstore
from mail.storage import mail_storage, raw_read, raw_store
from tests.mime import build_mail


def _put(data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    key = f"parts/{sha[:2]}/{sha}"
    rawstore().object_put(key, data, len(data))
    return key, sha


def _object(key: str) -> bytes:
    with rawstore().object_open(key) as fh:
        return fh.read()


def test_it_stores_bytes_under_their_hash_readable_and_leaves_no_temporary_file(settings: Any) -> None:
    data = b"x" * 200_000 + os.urandom(8)

    key, sha = _put(data)

    assert _object(key) == data
    folder = Path(mail_storage().path(key)).parent
    names = [p.name for p in folder.iterdir()]  # other tests' objects may share the folder
    assert sha in names and not [n for n in names if n.endswith(".tmp")]
    assert oct(os.stat(mail_storage().path(key)).st_mode & 0o777) == "0o644"
    assert _put(data) == (key, sha)


def test_it_repairs_a_truncated_object_instead_of_trusting_it(settings: Any) -> None:
    data = b"y" * 10_000 + os.urandom(8)
    key, _ = _put(data)
    path = mail_storage().path(key)
    with open(path, "r+b") as fh:  # what a writer killed mid-write leaves
        fh.truncate(100)
    with pytest.raises(FileNotFoundError):  # never served cut short
        rawstore().object_open(key, size=len(data))

    _put(data)

    assert _object(key) == data


def test_a_failed_write_raises_and_leaves_neither_object_nor_temporary_file(monkeypatch: Any) -> None:
    raw = b"Subject: disk full\r\n\r\nbody\r\n"

    def full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mail.rawstore.local.os.write", full)
    with pytest.raises(OSError):
        _put(raw)
    monkeypatch.undo()

    key, _ = _put(b"other" + os.urandom(8))  # makes sure the folder exists to look in
    folder = Path(mail_storage().path(key)).parent.parent
    assert not [p for p in folder.rglob("*.tmp")]
    assert not [p for p in folder.rglob("*") if p.is_file() and p.read_bytes() == raw]


class _SyncSpy:
    """Stands in for libc's ``syncfs``: records, at each call, which of ``watched`` exist
    and how many delivery rows are committed, then runs the real one."""

    def __init__(self, real: Any, watched: list[str] = (), result: int | None = None) -> None:  # type: ignore[assignment]
        self.real, self.watched, self.result = real, list(watched), result
        self.calls: list[tuple[list[bool], int]] = []

    def observe(self) -> Any:
        return [os.path.exists(p) for p in self.watched]

    def __call__(self, fd: int) -> int:
        self.calls.append((self.observe(), InboundDelivery.objects.count()))
        if self.result is not None:
            ctypes.set_errno(5)
            return self.result
        return int(self.real(fd))


needs_syncfs = pytest.mark.skipif(storage._syncfs is None, reason="no syncfs on this platform")


def _packs() -> dict[str, int]:
    root = Path(mail_storage().path("packs"))
    return {str(p): p.stat().st_size for p in root.rglob("*.pack")} if root.exists() else {}


@needs_syncfs
def test_with_fsync_a_stored_object_is_synced_once_it_is_in_place(settings: Any, monkeypatch: Any, db: Any) -> None:
    settings.MAIL_STORAGE_FSYNC = True
    raw = b"Subject: durable\r\n\r\n" + os.urandom(3000)
    before = _packs()
    spy = _SyncSpy(storage._syncfs)
    spy.observe = lambda: [size for path, size in _packs().items() if path not in before]  # type: ignore[method-assign]
    monkeypatch.setattr(storage, "_syncfs", spy)

    raw_store(raw)

    assert spy.calls == [([packs.HEADER_SIZE + len(raw)], 0)]


@needs_syncfs
def test_a_batch_is_one_pack_synced_once_whole_and_before_its_commit(
    settings: Any, monkeypatch: Any, owner: Any
) -> None:
    settings.MAIL_STORAGE_FSYNC = True
    raws = [build_mail(to=owner.address, subject=f"batch {n}", body=os.urandom(8).hex()) for n in range(5)]
    before = _packs()
    spy = _SyncSpy(storage._syncfs)
    spy.observe = lambda: {path: size for path, size in _packs().items() if path not in before}  # type: ignore[attr-defined]
    monkeypatch.setattr(storage, "_syncfs", spy)

    deliveries_accept([Arrival(raw, "smtp", [owner.address]) for raw in raws])

    # One sync, of one new pack already holding every record, no delivery row committed yet.
    ((new_packs, committed),) = spy.calls
    assert committed == 0
    assert list(new_packs.values()) == [sum(packs.HEADER_SIZE + len(raw) for raw in raws)]
    assert {d.storage_key.rsplit("/", 1)[0] for d in InboundDelivery.objects.all()} == {
        Path(next(iter(new_packs))).relative_to(mail_storage().location).as_posix()
    }


@needs_syncfs
def test_a_failed_sync_fails_the_accept_and_commits_nothing(settings: Any, monkeypatch: Any, owner: Any) -> None:
    settings.MAIL_STORAGE_FSYNC = True
    monkeypatch.setattr(storage, "_syncfs", _SyncSpy(storage._syncfs, result=-1))

    with pytest.raises(OSError):
        deliveries_accept([Arrival(build_mail(to=owner.address, subject="eio"), "smtp", [owner.address])])

    assert InboundDelivery.objects.count() == 0


def test_without_syncfs_each_file_and_its_folders_are_synced(settings: Any, monkeypatch: Any) -> None:
    settings.MAIL_STORAGE_FSYNC = True
    monkeypatch.setattr(storage, "_syncfs", None)
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr("mail.rawstore.local.os.fsync", fsync)
    raw = b"Subject: portable\r\n\r\n" + os.urandom(100)

    key, _ = raw_store(raw)

    final = mail_storage().path(packs.split_key(key)[0])
    assert synced[0] == final
    day = os.path.dirname(final)  # packs/<day>/, packs/, then the storage's own folder
    assert set(synced[1:]) == {day, os.path.dirname(day), os.path.dirname(os.path.dirname(day))}


def test_without_fsync_nothing_is_synced(settings: Any, monkeypatch: Any) -> None:
    settings.MAIL_STORAGE_FSYNC = False
    spy = _SyncSpy(storage._syncfs)
    monkeypatch.setattr(storage, "_syncfs", spy)
    monkeypatch.setattr("mail.rawstore.local.os.fsync", lambda fd: pytest.fail("fsync called"))

    key, _ = raw_store(b"Subject: fast\r\n\r\n" + os.urandom(100))

    assert spy.calls == [] and raw_read(key).startswith(b"Subject: fast")

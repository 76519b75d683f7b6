"""Packs: the raw MIME of a whole accepted batch in one local file.

In file-storage mode, a new file per mail is the largest and least steady part of
accepting mail (bench/HISTORY.md, sixth session; docs/decisions/0010-pack-files.md): creating an inode costs 0.03 to 0.36 ms
of kernel CPU while PostgreSQL or SQLite sync their own files on the same disk, and
appending costs 0.01 ms. So the local raw store (``mail.rawstore.local``) writes every
batch (an SMTP group commit, a provider's batch, a sent mail) as records of one pack file,
synced once (docs/decisions/0010-pack-files.md). S3 mode keeps one object per mail.

A record is a 16-byte header (``AMR``, a state byte, the length as 8 bytes big-endian,
4 zero bytes) followed by the bytes. Its key names the pack and the span:
``packs/<day>/<id>.pack/<offset>.<length>``, the offset (of the bytes, after the header)
zero-padded so that keys sort in file order. The state byte is ``L`` while the mail
storage holds the bytes, ``X`` once they are gone from it (deleted, or moved to the
archive storage); going, the span is punched out of the file (or zeroed where the file
system cannot punch), so deleted mail does not linger; a restore from the archive writes
the bytes back into their span. The headers make a pack walkable without the database
(backfill); a record cut short by a crash ends the walk, and was never committed.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import io
import os
import struct
from collections.abc import Callable, Iterator
from typing import IO, cast

from assmbl.ids import ulid

PREFIX = "packs/"
SUFFIX = ".pack"
_HEADER = struct.Struct(">3sc8s4x")
HEADER_SIZE = _HEADER.size
_MAGIC = b"AMR"
LIVE, GONE = b"L", b"X"
_COPY_CHUNK = 1024 * 1024


def is_pack_key(key: str) -> bool:
    return key.startswith(PREFIX) and SUFFIX + "/" in key


def split_key(key: str) -> tuple[str, int, int]:
    """(the pack file's key, the offset of the bytes, their length)."""
    pack, _, span = key.rpartition("/")
    offset, _, length = span.partition(".")
    return pack, int(offset), int(length)


def record_key(pack: str, offset: int, length: int) -> str:
    return f"{pack}/{offset:012d}.{length}"


def _header(state: bytes, length: int) -> bytes:
    return _HEADER.pack(_MAGIC, state, length.to_bytes(8, "big"))


def pack_write(path_of: Callable[[str], str], raws: list[bytes]) -> list[str]:
    """Write ``raws`` as the records of a new pack; their keys, in order. Not durable until
    the caller syncs the pack file (``LocalRawStore.sync`` does, with the rest of a batch).

    ``path_of`` maps a storage key to its local path. A failed write removes the pack:
    no record of it was promised to anyone yet."""
    pack = f"{PREFIX}{dt.datetime.now(dt.UTC):%Y%m%d}/{ulid()}{SUFFIX}"
    path = path_of(pack)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    keys, offset = [], 0
    try:
        try:
            for raw in raws:
                write_all(fd, _header(LIVE, len(raw)))
                write_all(fd, raw)
                keys.append(record_key(pack, offset + HEADER_SIZE, len(raw)))
                offset += HEADER_SIZE + len(raw)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return keys


def write_all(fd: int, data: bytes | IO[bytes]) -> None:
    """``os.write`` until every byte is written (a write may take only part); ``data`` is
    bytes, or a file read from where it stands to its end."""
    if not isinstance(data, bytes):
        while chunk := data.read(_COPY_CHUNK):
            write_all(fd, chunk)
        return
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _state(fd: int, offset: int, length: int) -> bytes | None:
    header = os.pread(fd, HEADER_SIZE, offset - HEADER_SIZE)
    if len(header) != HEADER_SIZE:
        return None
    magic, state, size = _HEADER.unpack(header)
    if magic != _MAGIC or int.from_bytes(size, "big") != length:
        return None
    return bytes(state)


def record_live(path: str, offset: int, length: int) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        return _state(fd, offset, length) == LIVE
    finally:
        os.close(fd)


class Record(io.RawIOBase):
    """One record's bytes as a seekable, read-only binary stream (``pread`` on the pack)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        super().__init__()
        self._fd, self._start, self.size, self._pos = fd, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._start + self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        # One pread for the rest, not RawIOBase's loop of 8 KB reads.
        data = os.pread(self._fd, max(0, self.size - self._pos), self._start + self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def record_open(path: str, offset: int, length: int) -> Record:
    """The record's bytes; FileNotFoundError when the pack or a live record is not there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except NotADirectoryError:
        raise FileNotFoundError(path) from None
    if _state(fd, offset, length) != LIVE:
        os.close(fd)
        raise FileNotFoundError(f"{path}: no live record at {offset}")
    return Record(fd, offset, length)


def record_remove(path: str, offset: int, length: int) -> None:
    """Mark the record gone, then take its bytes out of the file."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, _header(GONE, length), offset - HEADER_SIZE)
        if not _punch(fd, offset, length):
            zeros = bytes(min(length, _COPY_CHUNK))
            for start in range(0, length, len(zeros) or 1):
                os.pwrite(fd, zeros[: length - start], offset + start)
    finally:
        os.close(fd)


def record_restore(path: str, offset: int, length: int, source: IO[bytes]) -> None:
    """Write the bytes back into their span (from the archive), durably, then mark the
    record live: a crash in between leaves it gone, and the archive copy is kept until
    this returns."""
    fd = os.open(path, os.O_WRONLY)
    try:
        position = offset
        while chunk := source.read(_COPY_CHUNK):
            if position + len(chunk) > offset + length:
                raise ValueError(f"{path}: the restored object is longer than its record")
            _write_at(fd, chunk, position)
            position += len(chunk)
        if position != offset + length:
            raise ValueError(f"{path}: the restored object is shorter than its record")
        os.fdatasync(fd)
        os.pwrite(fd, _header(LIVE, length), offset - HEADER_SIZE)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _write_at(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view, position = view[written:], position + written


def pack_records(path: str, pack: str) -> Iterator[str]:
    """The keys of the live records of one pack, in file order (backfill's walk)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        offset = 0
        while offset + HEADER_SIZE <= size:
            fh.seek(offset)
            magic, state, length_bytes = _HEADER.unpack(fh.read(HEADER_SIZE))
            length = int.from_bytes(length_bytes, "big")
            if magic != _MAGIC or offset + HEADER_SIZE + length > size:
                return  # the tail of a write cut short by a crash
            if state == LIVE:
                yield record_key(pack, offset + HEADER_SIZE, length)
            offset += HEADER_SIZE + length


_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (AttributeError, OSError):  # not Linux/glibc
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    fallocate.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fallocate)


_fallocate = _libc_fallocate()


def _punch(fd: int, offset: int, length: int) -> bool:
    """Free the span's blocks (what is left of a partial block reads as zeros)."""
    if _fallocate is None or not length:
        return False
    return _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0

"""Raw MIME in local storage: written whole (a temporary file, then a rename), idempotent,
and a truncated object left by a crash of an older writer is repaired, not trusted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mail.storage import mail_storage, raw_read, raw_store


def test_it_stores_bytes_under_their_hash_readable_and_leaves_no_temporary_file(settings: Any) -> None:
    raw = b"Subject: hi\r\n\r\n" + b"x" * 200_000

    key, sha = raw_store(raw)

    assert raw_read(key) == raw and key.endswith(f"{sha}.eml")
    folder = Path(mail_storage().path(key)).parent
    names = [p.name for p in folder.iterdir()]  # other tests' objects may share the folder
    assert f"{sha}.eml" in names and not [n for n in names if n.endswith(".tmp")]
    assert oct(os.stat(mail_storage().path(key)).st_mode & 0o777) == "0o644"
    assert raw_store(raw) == (key, sha)


def test_it_repairs_a_truncated_object_instead_of_trusting_it(settings: Any) -> None:
    raw = b"Subject: crash\r\n\r\n" + b"y" * 10_000
    key, _ = raw_store(raw)
    path = mail_storage().path(key)
    with open(path, "r+b") as fh:  # what a writer killed mid-write leaves
        fh.truncate(100)

    raw_store(raw)

    assert raw_read(key) == raw


def test_a_failed_write_raises_and_leaves_neither_object_nor_temporary_file(monkeypatch: Any) -> None:
    raw = b"Subject: disk full\r\n\r\nbody\r\n"

    def full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mail.storage.os.write", full)
    with pytest.raises(OSError):
        raw_store(raw)
    monkeypatch.undo()

    key, _ = raw_store(b"Subject: other\r\n\r\n")  # makes sure the folder exists to look in
    folder = Path(mail_storage().path(key)).parent.parent
    assert not [p for p in folder.rglob("*.tmp")]
    assert not [p for p in folder.rglob("*.eml") if p.read_bytes() == raw]

"""Packs (mail.packs): a batch accepted into local storage is one file of records, read,
archived, restored, deleted and backfilled record by record, and deleted bytes do not
linger in the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mail import packs, storage
from mail.ingest import Arrival, deliveries_accept
from mail.models import InboundDelivery
from mail.sources.backfill import storage_objects
from tests.mime import build_mail


def _span(key: str) -> bytes:
    pack, offset, length = packs.split_key(key)
    with open(storage.mail_storage().path(pack), "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def test_a_batch_is_one_pack_whose_records_read_back_in_order() -> None:
    raws = [b"Subject: one\r\n\r\n" + os.urandom(500), b"", b"Subject: three\r\n\r\n" + os.urandom(70_000)]

    stored = storage.raws_store(raws)

    keys = [key for key, _ in stored]
    assert len({packs.split_key(key)[0] for key in keys}) == 1 and keys == sorted(keys)
    assert [storage.raw_read(key) for key in keys] == raws
    with storage.raw_open(keys[2]) as fh:  # what FileResponse and Django's File ask of it
        assert fh.read(10) == raws[2][:10] and fh.tell() == 10
        assert fh.seek(0, os.SEEK_END) == len(raws[2]) and fh.read() == b""
        fh.seek(5)
        assert fh.read() == raws[2][5:]
    assert all(storage.raw_exists(key) and not storage.raw_exists(key, archived=True) for key in keys)


def test_deleting_a_record_removes_its_bytes_and_leaves_its_neighbours() -> None:
    raws = [b"Subject: keep\r\n\r\n" + os.urandom(5000), b"Subject: secret\r\n\r\n" + os.urandom(9000)]
    (keep, _), (secret, _) = storage.raws_store(raws)

    storage.raw_delete(secret)

    assert not storage.raw_exists(secret)
    with pytest.raises(FileNotFoundError):
        storage.raw_read(secret)
    assert _span(secret) == bytes(len(raws[1]))  # punched out (or zeroed): nothing lingers
    assert storage.raw_read(keep) == raws[0]


def test_archiving_moves_a_record_out_and_restoring_writes_it_back() -> None:
    raw = b"Subject: archive me\r\n\r\n" + os.urandom(20_000)
    ((key, _),) = storage.raws_store([raw])

    storage.raw_move(key, to_archive=True)

    assert storage.raw_exists(key, archived=True) and not storage.raw_exists(key)
    assert _span(key) == bytes(len(raw))
    assert storage.raw_read(key, archived=True) == raw

    storage.raw_move(key, to_archive=False)

    assert storage.raw_exists(key) and not storage.raw_exists(key, archived=True)
    assert storage.raw_read(key) == raw and _span(key) == raw


def test_backfill_walks_the_live_records_and_stops_at_a_torn_tail() -> None:
    raws = [b"Subject: a\r\n\r\n1", b"Subject: b\r\n\r\n22", b"Subject: c\r\n\r\n333"]
    keys = [key for key, _ in storage.raws_store(raws)]
    storage.raw_delete(keys[1])
    pack = packs.split_key(keys[0])[0]
    path = storage.mail_storage().path(pack)
    with open(path, "ab") as fh:  # a crash mid-write: a header, half the bytes
        fh.write(packs._header(packs.LIVE, 1000) + b"x" * 10)

    walked = [obj.key for obj in storage_objects("packs/") if obj.key.startswith(pack)]

    assert walked == [keys[0], keys[2]]


def test_a_failed_write_leaves_no_pack(monkeypatch: Any) -> None:
    real, calls = os.write, []

    def failing(fd: int, data: Any) -> int:
        calls.append(1)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real(fd, data)

    before = set(Path(storage.mail_storage().path("packs")).rglob("*.pack"))
    monkeypatch.setattr("mail.packs.os.write", failing)
    with pytest.raises(OSError):
        storage.raws_store([b"Subject: a\r\n\r\n", b"Subject: b\r\n\r\n"])
    monkeypatch.undo()

    assert set(Path(storage.mail_storage().path("packs")).rglob("*.pack")) == before


@pytest.mark.django_db
def test_a_redelivery_in_the_same_batch_keeps_one_copy(owner: Any) -> None:
    raw = build_mail(to=owner.address, subject="twice")

    first, second = deliveries_accept([Arrival(raw, "smtp", [owner.address])] * 2)

    assert first.created and not second.created and second.delivery.pk == first.delivery.pk
    (delivery,) = InboundDelivery.objects.all()
    assert storage.raw_read(delivery.storage_key) == raw
    pack, offset, length = packs.split_key(delivery.storage_key)
    walked = list(packs.pack_records(storage.mail_storage().path(pack), pack))
    assert walked == [delivery.storage_key]  # the second copy is gone from the pack

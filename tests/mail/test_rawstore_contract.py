"""The RawStore contract, run against both implementations: the local one on temporary
folders, the S3 one on moto's server (127.0.0.1) as MAIL_STORAGE=s3 configures it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mail.rawstore import LocalRawStore, RawStore, S3RawStore, rawstore
from tests.s3 import moto_server, s3_storages

BUCKET = "assmbl-rawstore-contract"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RawStore]:
    if request.param == "local":
        yield LocalRawStore(tmp_path / "mail", tmp_path / "archive")
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    with s3_storages(endpoint, BUCKET, monkeypatch):
        chosen = rawstore()
        assert isinstance(chosen, S3RawStore)
        yield chosen


def _mails(n: int) -> list[bytes]:
    return [f"Subject: mail {i}\r\n\r\n".encode() + os.urandom(100 + i) for i in range(n)]


def _read(fh: Any) -> bytes:
    with fh:
        return bytes(fh.read())


def test_a_stored_batch_reads_back_in_order_in_one_layout(store: RawStore) -> None:
    raws = _mails(3)

    stored = store.store_batch(raws)
    store.sync([key for key, _ in stored])

    assert len(stored) == 3 and len({key for key, _ in stored}) == 3
    assert [_read(store.open(key)) for key, _ in stored] == raws
    assert all(store.exists(key) and not store.exists(key, archived=True) for key, _ in stored)
    assert store.store_batch([]) == []


def test_an_object_streams_in_chunks(store: RawStore) -> None:
    raw = b"Subject: big\r\n\r\n" + os.urandom(300_000)
    ((key, _),) = store.store_batch([raw])

    with store.open(key) as fh:
        chunks = list(iter(lambda: fh.read(65536), b""))

    assert len(chunks) > 1 and b"".join(chunks) == raw


def test_it_moves_to_the_archive_and_back_and_a_repeat_is_harmless(store: RawStore) -> None:
    raw, other = _mails(2)
    (key, _), (other_key, _) = store.store_batch([raw, other])

    store.move(key, to_archive=True)
    store.move(key, to_archive=True)  # after a crash, the next run repeats it

    assert store.exists(key, archived=True) and not store.exists(key)
    assert _read(store.open(key, archived=True)) == raw
    assert _read(store.open(key)) == raw  # falls back to the other side
    store.move(key, to_archive=False)
    assert store.exists(key) and not store.exists(key, archived=True)
    assert _read(store.open(key)) == raw and _read(store.open(other_key)) == other


def test_a_shared_object_kept_at_the_source_is_pruned_but_never_lost(store: RawStore) -> None:
    ((key, _),) = store.store_batch(_mails(1))

    store.move(key, to_archive=True, keep_source=True)
    assert store.exists(key) and store.exists(key, archived=True)
    store.prune(key, keep_mail=False, keep_archive=True)
    assert not store.exists(key) and store.exists(key, archived=True)
    store.prune(key, keep_mail=False, keep_archive=False)  # the last copy stays
    assert store.exists(key, archived=True)


def test_a_deleted_object_is_gone_from_both_sides_and_from_the_walk(store: RawStore) -> None:
    (keep, _), (gone, _) = store.store_batch(_mails(2))
    store.move(gone, to_archive=True, keep_source=True)

    store.delete(gone)

    assert not store.exists(gone) and not store.exists(gone, archived=True)
    with pytest.raises(FileNotFoundError):
        store.open(gone)
    assert [o.key for o in store.walk()] == [keep]
    store.delete(gone)  # again: nothing left to do


def test_the_walk_lists_every_raw_object_in_key_order_under_a_prefix(store: RawStore) -> None:
    keys = sorted(key for key, _ in store.store_batch(_mails(3)) + store.store_batch(_mails(5)[3:]))

    walked = list(store.walk())

    assert [o.key for o in walked] == keys
    assert all(o.modified.tzinfo is not None for o in walked)
    assert [o.key for o in store.walk(keys[-1])] == [keys[-1]]
    assert list(store.walk("no-such-prefix/")) == []


def test_the_walk_skips_attachment_objects(store: RawStore) -> None:
    ((key, _),) = store.store_batch(_mails(1))
    part = b"To: someone@agents.localhost\r\nSubject: a part\r\n\r\n"
    store.object_put("parts/cd/cdef", part, len(part))
    store.object_put("uploads/att_3", part, len(part))

    assert [o.key for o in store.walk()] == [key]


def test_a_discarded_copy_leaves_the_rest_readable(store: RawStore) -> None:
    raws = _mails(2)
    (kept, _), (spare, _) = store.store_batch(raws)

    store.discard(spare)

    assert _read(store.open(kept)) == raws[0]


def test_named_objects_are_put_once_read_stat_and_deleted(store: RawStore) -> None:
    data = os.urandom(200_000)
    key = "parts/ab/abcdef"

    store.object_put(key, data, len(data))
    store.object_put(key, data, len(data))  # already there whole: skipped

    stat = store.object_stat(key)
    assert stat is not None and stat.size == len(data)
    assert _read(store.object_open(key)) == data
    assert _read(store.object_open(key, size=len(data))) == data
    store.object_delete(key)
    assert store.object_stat(key) is None
    with pytest.raises(FileNotFoundError):
        store.object_open(key)
    store.object_delete(key)  # missing: nothing to do


def test_a_saved_object_replaces_the_one_before(store: RawStore, tmp_path: Path) -> None:
    for content in (b"first version", b"second"):
        spool = tmp_path / "spool"
        spool.write_bytes(content)
        with spool.open("rb") as fh:
            store.object_save("uploads/att_1", fh)

    assert _read(store.object_open("uploads/att_1")) == b"second"


def test_a_name_that_climbs_out_of_the_storage_is_refused(store: RawStore) -> None:
    for name in ("../escape", "parts/../../escape"):
        with pytest.raises(ValueError):
            store.object_stat(name)
        with pytest.raises(ValueError):
            store.object_open(name)


def test_direct_uploads_and_downloads_are_offered_only_by_a_store_that_has_them(store: RawStore) -> None:
    if not store.direct_uploads:
        with pytest.raises(NotImplementedError):
            store.upload_form("uploads/att_2", size=3, content_type="text/plain", expires_in=60)
        return
    url, fields = store.upload_form("uploads/att_2", size=3, content_type="text/plain", expires_in=60)
    assert url and fields["Content-Type"] == "text/plain"
    assert store.download_url("uploads/att_2", content_type="text/plain", disposition="attachment", expires_in=60)

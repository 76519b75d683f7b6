"""The raw-mail storage on S3 (django-storages S3Storage, SigV4) as MAIL_STORAGE=s3 sets it
up: content-addressed writes under MAIL_S3_PREFIX, archive moves under ARCHIVE_S3_PREFIX."""

from __future__ import annotations

from typing import Any

from mail.storage import mail_storage, raw_exists, raw_move, raw_read, raw_store
from tests.aws.conftest import BUCKET


def _keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_it_stores_raw_mail_under_the_prefix(s3: Any) -> None:
    key, sha = raw_store(b"Subject: hi\r\n\r\nbody\r\n")
    assert _keys(s3) == [f"raw/{key}"]
    assert raw_read(key) == b"Subject: hi\r\n\r\nbody\r\n"
    assert raw_store(b"Subject: hi\r\n\r\nbody\r\n") == (key, sha)  # idempotent
    assert mail_storage().connection.meta.client.meta.config.signature_version == "s3v4"


def test_it_moves_objects_to_the_archive_prefix_and_back(s3: Any) -> None:
    key, _ = raw_store(b"Subject: archive me\r\n\r\nbody\r\n")
    raw_move(key, to_archive=True)
    assert _keys(s3) == [f"archive/{key}"]
    assert raw_exists(key, archived=True) and not raw_exists(key)
    assert raw_read(key, archived=True) == b"Subject: archive me\r\n\r\nbody\r\n"
    raw_move(key, to_archive=True)  # repeating after a crash is harmless
    raw_move(key, to_archive=False)
    assert _keys(s3) == [f"raw/{key}"]


def test_it_reads_an_object_ses_wrote_by_its_storage_key(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="raw/0abcses", Body=b"Subject: from ses\r\n\r\n")
    assert raw_read("0abcses") == b"Subject: from ses\r\n\r\n"
    raw_move("0abcses", to_archive=True)
    assert _keys(s3) == ["archive/0abcses"]

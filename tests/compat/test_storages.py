"""compat/storages.py against the installed django-storages: the object key it computes
for a name is the one S3Storage writes, and the client is the storage's own (SigV4).
Fails on an upgrade that changes either."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.core.exceptions import SuspiciousOperation
from django.core.files.base import ContentFile
from moto import mock_aws
from storages.backends.s3 import S3Storage

from compat.storages import s3_bucket, s3_client, s3_object_key, s3_prefix

BUCKET = "assmbl-compat"


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _storage(location: str) -> S3Storage:
    return S3Storage(
        bucket_name=BUCKET, location=location, region_name="us-east-1", signature_version="s3v4", file_overwrite=True
    )


@pytest.mark.parametrize("location", ["raw", "raw/deeper/", ""])
def test_the_computed_key_is_where_s3storage_writes_a_name(bucket: Any, location: str) -> None:
    storage = _storage(location)
    for name in ("ab/abc.eml", "parts/cd/cdef", "uploads/att_1", "a//b/./c", "0ses-message-id"):
        storage.save(name, ContentFile(b"x"))
        bucket.head_object(Bucket=BUCKET, Key=s3_object_key(storage, name))  # raises when absent
    listed = {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert all(key.startswith(s3_prefix(storage)) for key in listed)


def test_the_client_and_bucket_are_the_storages_own(bucket: Any) -> None:
    storage = _storage("raw")
    assert s3_bucket(storage) == BUCKET
    assert s3_client(storage).meta.config.signature_version == "s3v4"


def test_a_name_outside_the_location_is_refused_as_s3storage_refuses_it(bucket: Any) -> None:
    storage = _storage("raw")
    for name in ("../other/key", "raw/../../other/key", "parts/../uploads/x"):
        with pytest.raises(ValueError):
            s3_object_key(storage, name)
        with pytest.raises(SuspiciousOperation):
            storage.save(name, ContentFile(b"x"))

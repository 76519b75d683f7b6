"""AWS fixtures: fake credentials, moto (in-process), an S3-backed mail storage, and SNS
signing through the injected fetcher."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.core.cache import cache
from moto import mock_aws

from tests.aws import sns_signing
from tests.aws.sns_signing import TOPIC, FakeFetcher, Signer

BUCKET = "assmbl-mail"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer.create()


@pytest.fixture
def fetcher(signer: Signer, settings: Any) -> Iterator[FakeFetcher]:
    settings.SES_SNS_FETCHER = "tests.aws.sns_signing.fetch"
    settings.SES_SNS_TOPIC_ARNS = [TOPIC]
    cache.clear()
    sns_signing.FETCHER.pem = signer.pem
    sns_signing.FETCHER.calls = []
    yield sns_signing.FETCHER
    cache.clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def s3_storages(bucket: str = BUCKET, prefix: str = "raw", archive_prefix: str = "archive") -> dict[str, Any]:
    options = {"region_name": REGION, "signature_version": "s3v4", "file_overwrite": True, "default_acl": None}
    backend = "storages.backends.s3.S3Storage"
    return {
        "default": {"BACKEND": backend, "OPTIONS": {**options, "bucket_name": bucket, "location": prefix}},
        "archive": {"BACKEND": backend, "OPTIONS": {**options, "bucket_name": bucket, "location": archive_prefix}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def s3(aws: None, settings: Any) -> Any:
    """The mail and archive storages on a moto bucket, as MAIL_STORAGE=s3 configures them."""
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    settings.MAIL_STORAGE = "s3"
    settings.MAIL_S3_BUCKET = BUCKET
    settings.MAIL_S3_PREFIX = "raw"
    settings.STORAGES = s3_storages()
    return client

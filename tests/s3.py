"""A real S3 endpoint for tests: moto's server on 127.0.0.1, and the project's storages
pointed at a bucket on it (as MAIL_STORAGE=s3 configures them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import requests
from django.test import override_settings

from tests.conftest import free_port

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def s3_storages(endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh bucket, and STORAGES as MAIL_STORAGE=s3 sets them (raw/ and archive/ prefixes)."""
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    options = {
        "region_name": "us-east-1",
        "endpoint_url": endpoint,
        "signature_version": "s3v4",
        "file_overwrite": True,
        "default_acl": None,
        "bucket_name": bucket,
    }
    storages = {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "raw"}},
        "archive": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "archive"}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(MAIL_STORAGE="s3", STORAGES=storages):
        yield client

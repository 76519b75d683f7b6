"""The SDK's attachment calls against S3 (moto's server on 127.0.0.1): upload_attachment
fills in the presigned POST form, and download_attachment follows the redirect to a
presigned GET (without sending our token to S3)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from django.test import override_settings

from agentmail_client import AgentMailClient
from tests.conftest import free_port
from tests.sdk.conftest import LiveAgent

BUCKET = "assmbl-sdk-test"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, transactional_db: Any) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    options = {
        "region_name": "us-east-1",
        "endpoint_url": moto_endpoint,
        "signature_version": "s3v4",
        "file_overwrite": True,
        "default_acl": None,
        "bucket_name": BUCKET,
    }
    storages = {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "raw"}},
        "archive": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "archive"}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(MAIL_STORAGE="s3", STORAGES=storages):
        yield client


def test_it_uploads_through_a_presigned_post(s3: Any, client: AgentMailClient) -> None:
    data = os.urandom(50_000)

    attachment_id = client.upload_attachment(data, filename="scan.png")

    state = client.get_attachment(attachment_id)
    assert (state["State"], state["Size"], state["ContentType"]) == ("uploaded", 50_000, "image/png")
    assert s3.get_object(Bucket=BUCKET, Key=f"raw/uploads/{attachment_id}")["Body"].read() == data


def test_it_downloads_by_following_the_presigned_redirect(
    s3: Any, client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    data = os.urandom(30_000)
    receive(live_agent, subject="Scan", attachments=[("scan.bin", "application/octet-stream", data)])
    item = client.list_inbox()["items"][0]

    assert client.download_attachment(item["MessageID"], item["Attachments"][0]["AttachmentID"]) == data

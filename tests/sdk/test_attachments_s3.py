"""The SDK's attachment calls against S3 (moto's server on 127.0.0.1): upload_attachment
fills in the presigned POST form, and download_attachment follows the redirect to a
presigned GET (without sending our token to S3)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentmail_client import AgentMailClient
from tests.s3 import moto_server, s3_storages
from tests.sdk.conftest import LiveAgent

BUCKET = "assmbl-sdk-test"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, transactional_db: Any) -> Iterator[Any]:
    with s3_storages(moto_endpoint, BUCKET, monkeypatch) as client:
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

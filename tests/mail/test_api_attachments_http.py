"""Uploads and downloads over a real HTTP socket on 127.0.0.1, and proof that neither holds
a whole file in the web process's memory."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test import override_settings

from mail.attachments import attachment_create, attachment_upload_receive
from mail.models import Message

EIGHT_MB = 8 * 1024 * 1024


@pytest.fixture
def public_base(live_server: Any) -> Iterator[str]:
    with override_settings(PUBLIC_BASE_URL=live_server.url):
        yield live_server.url


def test_it_takes_an_upload_by_the_signed_url_alone_over_http(public_base: str, owner: Any) -> None:
    data = os.urandom(2 * 1024 * 1024)
    headers = {"Authorization": f"Bearer {owner.token}"}
    body = {
        "filename": "data.bin",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    ticket = requests.post(f"{public_base}/v1/attachments", json=body, headers=headers, timeout=30).json()
    assert ticket["upload_url"].startswith(public_base)

    def chunks() -> Iterator[bytes]:  # sent with Transfer-Encoding: chunked, no Content-Length
        yield data

    # WSGI servers hand Django no body without a Content-Length: say so rather than "0 bytes".
    chunked = requests.put(
        ticket["upload_url"], data=chunks(), headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert chunked.status_code == 411
    assert chunked.json()["error"]["code"] == "content_length_required"
    sized = requests.put(
        ticket["upload_url"], data=io.BytesIO(data), headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert sized.status_code == 200, sized.text
    assert sized.json()["State"] == "uploaded"
    state = requests.get(f"{public_base}/v1/attachments/{ticket['AttachmentID']}", headers=headers, timeout=30)
    assert state.json()["Sha256"] == hashlib.sha256(data).hexdigest()

    too_big = requests.post(
        f"{public_base}/v1/attachments", json={**body, "sha256": None, "size": 10}, headers=headers, timeout=30
    ).json()
    refused = requests.put(
        too_big["upload_url"], data=data[:11], headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "attachment_too_large"


@pytest.mark.django_db
def test_it_streams_an_upload_to_storage_without_holding_it(owner: Any) -> None:
    data = os.urandom(EIGHT_MB)
    ticket = attachment_create(agent=owner.agent, filename="big.bin", content_type="application/zip", size=len(data))
    query = dict(pair.split("=", 1) for pair in ticket.url.split("?", 1)[1].split("&"))
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        attachment_upload_receive(
            attachment_id=ticket.attachment.id,
            expires=query["expires"],
            signature=query["signature"],
            stream=stream,
            content_length=len(data),
            content_type="application/zip",
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < EIGHT_MB / 8, f"upload peaked at {peak} bytes"


@pytest.mark.django_db
def test_it_streams_a_download_without_holding_it(owner: Any, deliver: Any) -> None:
    from tests.mime import build_mail

    data = os.urandom(EIGHT_MB)
    deliver(build_mail(to=owner.address, attachments=[("big.zip", "application/zip", data)]), to=owner.address)
    message = Message.objects.for_agent(owner.agent).get()
    url = f"/v1/messages/{message.id}/attachments/{message.attachments.get().id}"
    del data
    # Warm up first, so that one-time imports of the first request are not counted.
    assert owner.client.get(f"/v1/messages/{message.id}/attachments/att_unknown").status_code == 404
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        response = owner.client.get(url)
        for chunk in response.streaming_content:
            digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == message.attachments.get().sha256
    assert peak < EIGHT_MB / 8, f"download peaked at {peak} bytes"

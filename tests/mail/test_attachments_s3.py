"""The same flows against S3 (moto's server on 127.0.0.1): the presigned POST that pins the
declared size, upload detection by HEAD, and downloads by redirect to a presigned GET."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mail.attachments import attachment_open, attachments_expire, attachments_for_send, attachments_mark_claimed
from mail.models import Attachment, Message
from mail.serializers import message_item
from mail.storage import mail_storage
from tests.factories import MessageFactory
from tests.mail.test_api_attachments import outbound_mime
from tests.mime import build_mail
from tests.s3 import moto_server, s3_storages

BUCKET = "assmbl-mail-test"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, db: Any) -> Iterator[Any]:
    with s3_storages(moto_endpoint, BUCKET, monkeypatch) as client:
        yield client


def reserve(client: Any, data: bytes, **overrides: Any) -> dict[str, Any]:
    body = {"filename": "scan.png", "content_type": "image/png", "size": len(data), **overrides}
    response = client.post("/v1/attachments", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def post_to_s3(ticket: dict[str, Any], data: bytes) -> requests.Response:
    return requests.post(
        ticket["upload_url"], data=ticket["upload_fields"], files={"file": ("scan.png", data)}, timeout=30
    )


def test_it_uploads_to_s3_and_the_recipient_downloads_by_presigned_url(
    s3: Any, owner: Any, teammate: Any, deliver: Any
) -> None:
    data = os.urandom(200_000)
    ticket = reserve(owner.client, data, sha256=hashlib.sha256(data).hexdigest())
    assert ticket["upload_method"] == "POST"
    assert ticket["upload_fields"]["key"] == f"raw/uploads/{ticket['AttachmentID']}"
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "pending"

    assert post_to_s3(ticket, data).status_code in (200, 201, 204)
    # Nobody tells us S3 received it: the state is found by a HEAD of the object.
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "uploaded"

    attachments = attachments_for_send(agent=owner.agent, attachment_ids=[ticket["AttachmentID"]])
    raw = outbound_mime(sender=owner.address, to=teammate.address, attachments=attachments)
    attachments_mark_claimed(attachments=attachments, message=MessageFactory(agent=owner.agent, direction="outbound"))

    deliver(raw, to=teammate.address)
    received = Message.objects.for_agent(teammate.agent).get()
    [listed] = message_item(received)["Attachments"]
    assert (listed["Filename"], listed["Size"]) == ("scan.png", len(data))

    url = f"/v1/messages/{received.id}/attachments/{listed['AttachmentID']}"
    redirect = teammate.client.get(url)
    assert redirect.status_code == 302
    assert redirect["X-Url-Expires-At"].endswith("Z")
    assert "X-Amz-Expires=300" in redirect["Location"]
    fetched = requests.get(redirect["Location"], timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["Content-Disposition"] == 'attachment; filename="scan.png"'
    assert fetched.headers["Content-Type"] == "image/png"

    as_json = teammate.client.get(url, HTTP_ACCEPT="application/json").json()
    assert set(as_json) == {"url", "expires_at"}
    assert requests.get(as_json["url"], timeout=30).content == data
    assert owner.client.get(url).status_code == 404


def test_it_pins_the_declared_size_and_refuses_any_other(s3: Any, owner: Any) -> None:
    import base64
    import json

    from assmbl.errors import ApiError

    ticket = reserve(owner.client, b"12345")
    policy = json.loads(base64.b64decode(ticket["upload_fields"]["policy"]))
    # Real S3 rejects any other body size with EntityTooLarge/EntityTooSmall.
    assert ["content-length-range", 5, 5] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]
    # moto does not enforce content-length-range, which lets this test prove the second
    # line of defence: an object of the wrong size is never taken as uploaded.
    assert post_to_s3(ticket, b"123456").status_code in (200, 201, 204)
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "pending"
    with pytest.raises(ApiError) as caught:
        attachments_for_send(agent=owner.agent, attachment_ids=[ticket["AttachmentID"]])
    assert caught.value.code == "attachment_not_uploaded"


def test_it_keeps_an_s3_upload_pending_when_its_checksum_differs(s3: Any, owner: Any) -> None:
    ticket = reserve(owner.client, b"12345", sha256=hashlib.sha256(b"other").hexdigest())
    assert post_to_s3(ticket, b"12345").status_code in (200, 201, 204)
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "pending"


def test_the_sweep_deletes_expired_uploads_from_s3(s3: Any, owner: Any) -> None:
    import datetime as dt

    from django.utils import timezone

    ticket = reserve(owner.client, b"12345")
    assert post_to_s3(ticket, b"12345").status_code in (200, 201, 204)
    key = f"uploads/{ticket['AttachmentID']}"
    assert mail_storage().exists(key)
    Attachment.objects.filter(pk=ticket["AttachmentID"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert attachments_expire() == 1
    assert not mail_storage().exists(key)
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "expired"


def test_attachment_open_reads_an_s3_upload(s3: Any, owner: Any) -> None:
    ticket = reserve(owner.client, b"\x89PNG....")
    post_to_s3(ticket, b"\x89PNG....")
    [att] = attachments_for_send(agent=owner.agent, attachment_ids=[ticket["AttachmentID"]])
    with attachment_open(att) as fh:
        assert fh.read() == b"\x89PNG...."


def test_a_missing_s3_part_is_extracted_from_the_raw_mime_and_a_delete_prunes_parts(
    s3: Any, owner: Any, deliver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    accepted = deliver(
        build_mail(to=owner.address, attachments=[("a.bin", "application/octet-stream", b"\x01" * 64)]),
        to=owner.address,
    )
    message = Message.objects.get(delivery=accepted.delivery)
    attachment = message.attachments.get()
    assert mail_storage().exists(attachment.storage_key)

    mail_storage().delete(attachment.storage_key)  # S3 answers NoSuchKey now
    with attachment_open(attachment) as fh:
        assert fh.read() == b"\x01" * 64

    accepted = deliver(
        build_mail(
            to=owner.address, subject="again", attachments=[("b.bin", "application/octet-stream", b"\x02" * 64)]
        ),
        to=owner.address,
    )
    second = Message.objects.get(delivery=accepted.delivery)
    key = second.attachments.get().storage_key
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.client.delete(f"/v1/messages/{second.id}").status_code == 204
    assert not mail_storage().exists(key)
    # Pruning the second message's part left the first message readable (from its raw MIME).
    with attachment_open(message.attachments.get()) as fh:
        assert fh.read() == b"\x01" * 64

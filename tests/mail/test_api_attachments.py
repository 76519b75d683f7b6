"""The attachments API end to end in embedded mode: claim-check upload through the signed
URL, the send-side checks, delivery to another agent and a byte-identical download."""

from __future__ import annotations

import hashlib
import os
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from mail.attachments import attachment_open, attachments_for_send, attachments_mark_claimed
from mail.models import Attachment, Message
from mail.serializers import message_item
from tests.factories import MessageFactory
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def reserve(client: Any, data: bytes, **overrides: Any) -> Any:
    body = {"filename": "report.pdf", "content_type": "application/pdf", "size": len(data)}
    body.update(overrides)
    return client.post("/v1/attachments", body, format="json")


def put_upload(client: Any, upload_url: str, data: bytes, content_type: str = "application/pdf") -> Any:
    parts = urlsplit(upload_url)
    return client.generic("PUT", f"{parts.path}?{parts.query}", data, content_type=content_type)


def upload(persona: Any, data: bytes, **overrides: Any) -> str:
    created = reserve(persona.client, data, **overrides)
    assert created.status_code == 201, created.json()
    ticket = created.json()
    assert ticket["upload_method"] == "PUT"
    assert put_upload(persona.client, ticket["upload_url"], data).status_code == 200
    return ticket["AttachmentID"]


def outbound_mime(*, sender: str, to: str, attachments: list[Attachment]) -> bytes:
    """What the sending service builds: the upload's bytes read through attachment_open."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"], msg["To"], msg["Subject"] = sender, to, "The report"
    msg.set_content("Attached.")
    for att in attachments:
        with attachment_open(att) as fh:
            maintype, subtype = att.content_type.split("/", 1)
            msg.add_attachment(fh.read(), maintype=maintype, subtype=subtype, filename=att.filename)
    return msg.as_bytes()


def download(client: Any, message_id: str, attachment_id: str) -> Any:
    return client.get(f"/v1/messages/{message_id}/attachments/{attachment_id}")


def test_it_uploads_sends_and_lets_the_recipient_download_identical_bytes(owner: Any, teammate: Any, deliver: Any) -> None:
    data = os.urandom(300_000)
    created = reserve(owner.client, data, sha256=hashlib.sha256(data).hexdigest())
    assert created.status_code == 201
    ticket = created.json()
    assert ticket["AttachmentID"].startswith("att_")
    assert ticket["expires_at"].endswith("Z")
    assert "upload_fields" not in ticket
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "pending"

    # The signed URL alone authorises the upload: no bearer token.
    from rest_framework.test import APIClient

    uploaded = put_upload(APIClient(), ticket["upload_url"], data)
    assert uploaded.status_code == 200, uploaded.json()
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "uploaded"

    attachments = attachments_for_send(agent=owner.agent, attachment_ids=[ticket["AttachmentID"]])
    raw = outbound_mime(sender=owner.address, to=teammate.address, attachments=attachments)
    sent = MessageFactory(agent=owner.agent, direction=Message.Direction.OUTBOUND)
    attachments_mark_claimed(attachments=attachments, message=sent)
    assert owner.client.get(f"/v1/attachments/{ticket['AttachmentID']}").json()["State"] == "claimed"

    deliver(raw, to=teammate.address)
    received = Message.objects.for_agent(teammate.agent).get()
    listed = message_item(received)["Attachments"]
    assert [(a["Filename"], a["ContentType"], a["Size"]) for a in listed] == [("report.pdf", "application/pdf", len(data))]

    response = download(teammate.client, received.id, listed[0]["AttachmentID"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_hides_another_agents_download_behind_the_same_404_as_unknown(owner: Any, stranger: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, attachments=[("a.txt", "text/csv", b"x,y\n")]), to=owner.address)
    message = Message.objects.for_agent(owner.agent).get()
    att = message.attachments.get()
    assert download(owner.client, message.id, att.id).status_code == 200
    theirs = download(stranger.client, message.id, att.id)
    unknown = download(stranger.client, "msg_unknown", "att_unknown")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    # The stranger's own message does not unlock the owner's attachment either.
    deliver(build_mail(to=stranger.address), to=stranger.address)
    own = Message.objects.for_agent(stranger.agent).get()
    assert download(stranger.client, own.id, att.id).json() == {
        "error": {"code": "attachment_not_found", "message": "No such attachment.", "details": None}
    }


def test_it_refuses_a_declaration_over_the_size_limit(owner: Any) -> None:
    response = owner.client.post(
        "/v1/attachments",
        {"filename": "big.bin", "content_type": "application/octet-stream", "size": settings.MAX_ATTACHMENT_BYTES + 1},
        format="json",
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "attachment_too_large"


@pytest.mark.parametrize(
    "body",
    [
        {"content_type": "text/plain", "size": 3},
        {"filename": "a.txt", "content_type": "not a type", "size": 3},
        {"filename": "a.txt", "content_type": "text/plain", "size": -1},
        {"filename": "a.txt", "content_type": "text/plain", "size": "3"},
        {"filename": "a.txt", "content_type": "text/plain", "size": True},
        {"filename": "a.txt", "content_type": "text/plain", "size": 3, "sha256": "abc"},
        {"filename": "../..", "content_type": "text/plain", "size": 3},
    ],
)
def test_it_rejects_bad_declarations(owner: Any, body: dict[str, Any]) -> None:
    response = owner.client.post("/v1/attachments", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_it_requires_a_token_to_reserve(anonymous: Any) -> None:
    assert anonymous.post("/v1/attachments", {}, format="json").status_code == 401


def test_it_refuses_an_upload_larger_than_declared(owner: Any) -> None:
    ticket = reserve(owner.client, b"12345").json()
    response = put_upload(owner.client, ticket["upload_url"], b"123456")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "attachment_too_large"
    assert Attachment.objects.get(pk=ticket["AttachmentID"]).state == "pending"


def test_it_refuses_a_body_whose_checksum_differs(owner: Any) -> None:
    ticket = reserve(owner.client, b"12345", sha256=hashlib.sha256(b"54321").hexdigest()).json()
    response = put_upload(owner.client, ticket["upload_url"], b"12345")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "attachment_mismatch"
    assert Attachment.objects.get(pk=ticket["AttachmentID"]).state == "pending"


def test_it_refuses_a_short_body_or_another_content_type(owner: Any) -> None:
    ticket = reserve(owner.client, b"12345").json()
    assert put_upload(owner.client, ticket["upload_url"], b"1234").json()["error"]["code"] == "attachment_mismatch"
    wrong_type = put_upload(owner.client, ticket["upload_url"], b"12345", content_type="text/html")
    assert wrong_type.json()["error"]["code"] == "attachment_mismatch"


def test_it_refuses_a_tampered_or_reused_upload_url(owner: Any) -> None:
    ticket = reserve(owner.client, b"12345").json()
    other = reserve(owner.client, b"12345").json()
    # The signature of one upload does not open another.
    forged = ticket["upload_url"].replace(ticket["AttachmentID"], other["AttachmentID"])
    assert put_upload(owner.client, forged, b"12345").status_code == 403
    stretched = ticket["upload_url"].replace("expires=", "expires=9")
    assert put_upload(owner.client, stretched, b"12345").status_code == 403
    assert put_upload(owner.client, ticket["upload_url"], b"12345").status_code == 200
    again = put_upload(owner.client, ticket["upload_url"], b"12345")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "attachment_already_uploaded"


def test_it_shows_another_agents_upload_as_unknown(owner: Any, stranger: Any) -> None:
    attachment_id = upload(owner, b"secret")
    theirs = stranger.client.get(f"/v1/attachments/{attachment_id}")
    assert theirs.status_code == 404
    assert theirs.json() == stranger.client.get("/v1/attachments/att_nope").json()


def test_it_serves_a_non_ascii_hostile_filename_safely(owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address, attachments=[("../../etc/\u202egnp.exe r\u00e9sum\u00e9.txt", "text/html", b"<script>")])
    deliver(raw, to=owner.address)
    message = Message.objects.for_agent(owner.agent).get()
    att = message.attachments.get()
    assert att.filename == "gnp.exe r\u00e9sum\u00e9.txt"
    response = download(owner.client, message.id, att.id)
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''gnp.exe%20r%C3%A9sum%C3%A9.txt"
    assert response["Content-Type"] == "text/html"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


def test_it_downloads_whatever_the_client_accepts(owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, attachments=[("a.bin", "application/octet-stream", b"\0\1")]), to=owner.address)
    message = Message.objects.for_agent(owner.agent).get()
    response = owner.client.get(
        f"/v1/messages/{message.id}/attachments/{message.attachments.get().id}", HTTP_ACCEPT="application/octet-stream"
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\0\1"

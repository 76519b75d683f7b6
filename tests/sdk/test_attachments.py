"""upload_attachment (claim check, then the upload) and download_attachment, live."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentmail_client import AgentMailClient, NotFoundError
from tests.sdk.conftest import LiveAgent


@pytest.fixture(autouse=True)
def public_url(settings: Any, live_server: Any) -> None:
    # The embedded upload URL is built from PUBLIC_BASE_URL: point it at the live server.
    settings.PUBLIC_BASE_URL = live_server.url


def test_it_uploads_bytes_and_a_file_through_the_claim_check(client: AgentMailClient, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\n1,2\n")

    from_bytes = client.upload_attachment(b"%PDF-1.4 fake", filename="doc.pdf")
    from_path = client.upload_attachment(report)

    first, second = client.get_attachment(from_bytes), client.get_attachment(from_path)
    assert from_bytes.startswith("att_") and first["State"] == "uploaded"
    assert (first["Filename"], first["ContentType"], first["Size"]) == ("doc.pdf", "application/pdf", 13)
    assert (second["Filename"], second["ContentType"], second["Size"]) == ("report.csv", "text/csv", 8)


def test_it_downloads_an_inbound_attachment_byte_for_byte(
    client: AgentMailClient, live_agent: LiveAgent, receive: Callable[..., Any]
) -> None:
    data = bytes(range(256)) * 40
    receive(live_agent, subject="With a file", attachments=[("blob.bin", "application/octet-stream", data)])
    item = client.list_inbox()["items"][0]
    attachment = item["Attachments"][0]

    assert client.download_attachment(item["MessageID"], attachment["AttachmentID"]) == data
    with pytest.raises(NotFoundError):
        client.download_attachment(item["MessageID"], "att_nope")


def test_upload_then_send_then_the_recipient_downloads_it(
    client: AgentMailClient, other_agent: LiveAgent, settings: Any
) -> None:
    # pytest-django swaps in the locmem backend; agent-to-agent mail needs the embedded one.
    settings.EMAIL_BACKEND = "mail.backends.LocalEmailBackend"
    attachment_id = client.upload_attachment(b"hello attachment", filename="hello.txt")

    client.send_mail(to=other_agent.address, subject="Here is a file", body="see attached", attachments=[attachment_id])

    with other_agent.client() as recipient:
        item = recipient.list_inbox(q="Here is a file")["items"][0]
        downloaded = recipient.download_attachment(item["MessageID"], item["Attachments"][0]["AttachmentID"])
    assert downloaded == b"hello attachment"

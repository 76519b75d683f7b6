"""The content service wired in: GET /v1/messages/{id} serves the contract's content fields
from a stored row (computed after commit by the ``extract_content`` task, or on first read),
and GET /v1/messages/{id}/attachments/{att}/text serves an attachment as text, once converted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mail.message_content import EVENT_TEXT_MAX_CHARS, message_contents_extract
from mail.models import Attachment, AttachmentText, Message
from mail.models import MessageContent as MessageContentRow
from tests.mail.inbox_helpers import error_code
from tests.mail.test_content_attachments import pdf_bytes
from tests.mime import build_mail
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).parent / "testdata" / "content"


def _deliver_file(deliver: Any, persona: Any, name: str) -> Message:
    accepted = deliver((CORPUS / f"{name}.eml").read_bytes(), to=persona.address)
    return Message.objects.get(delivery=accepted.delivery, agent=persona.agent)


def _expected(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / f"{name}.expected.json").read_text())


@pytest.mark.parametrize("name", ["otp-german", "prompt-injection-white-text", "reply-gmail-html-quote"])
def test_it_serves_the_content_fields_of_a_message(owner: Any, deliver: Any, name: str) -> None:
    message = _deliver_file(deliver, owner, name)
    body = owner.client.get(f"/v1/messages/{message.id}").json()
    expected = _expected(name)
    assert body["ExtractedText"] == expected["extracted_text"]
    assert body["Codes"] == expected["codes"]
    assert body["Safety"]["flags"] == expected["flags"]
    assert set(body) >= {"Text", "Html", "Links", "PromptText", "raw_mime", "MessageID"}
    assert "<untrusted_email>" in body["PromptText"]
    assert body["BodyPreview"] == " ".join(expected["extracted_text"].split())[:256]


def test_the_task_stores_the_content_after_commit_and_a_read_uses_it(owner: Any, deliver: Any) -> None:
    message = _deliver_file(deliver, owner, "otp-german")
    row = MessageContentRow.objects.get(message=message)
    assert row.data["codes"] == ["482913"]
    # The stored row is what is served: changed here, changed in the answer.
    row.data["codes"] = ["111111"]
    row.save()
    assert owner.client.get(f"/v1/messages/{message.id}").json()["Codes"] == ["111111"]


def test_a_read_without_a_row_computes_and_stores_it(owner: Any, deliver: Any) -> None:
    message = _deliver_file(deliver, owner, "newsletter-hidden-preheader")
    MessageContentRow.objects.filter(message=message).delete()
    Message.objects.filter(pk=message.pk).update(body_preview="ingest's preview")
    body = owner.client.get(f"/v1/messages/{message.id}").json()
    assert body["ExtractedText"] == _expected("newsletter-hidden-preheader")["extracted_text"]
    assert MessageContentRow.objects.filter(message=message).exists()
    message.refresh_from_db()
    assert message.body_preview == body["BodyPreview"] != "ingest's preview"


def test_the_inbox_preview_of_a_new_message_comes_from_extracted_text(owner: Any, deliver: Any) -> None:
    message = _deliver_file(deliver, owner, "prompt-injection-white-text")
    item = owner.client.get("/v1/inbox").json()["items"][0]
    assert item["MessageID"] == message.id
    assert item["BodyPreview"] == " ".join(_expected("prompt-injection-white-text")["extracted_text"].split())[:256]


def test_the_thread_list_shows_the_preview_the_content_task_wrote(owner: Any, deliver: Any) -> None:
    # The task runs after ingest committed the thread row with ingest's own preview; the
    # thread's LastMessagePreview must follow the message's new BodyPreview.
    message = _deliver_file(deliver, owner, "prompt-injection-white-text")
    expected = " ".join(_expected("prompt-injection-white-text")["extracted_text"].split())[:256]
    thread = owner.client.get("/v1/threads").json()["items"][0]
    assert thread["LastMessageID"] == message.id
    assert thread["LastMessagePreview"] == expected


def test_another_agents_message_content_is_not_found(owner: Any, stranger: Any, deliver: Any) -> None:
    message = _deliver_file(deliver, owner, "otp-german")
    response = stranger.client.get(f"/v1/messages/{message.id}")
    assert response.status_code == 404 and error_code(response) == "message_not_found"


def _with_attachment(deliver: Any, persona: Any, filename: str, ctype: str, data: bytes) -> tuple[Message, Attachment]:
    raw = build_mail(to=persona.address, subject="With a file", attachments=[(filename, ctype, data)])
    accepted = deliver(raw, to=persona.address)
    message = Message.objects.get(delivery=accepted.delivery, agent=persona.agent)
    return message, message.attachments.get()


def test_it_serves_a_pdf_attachment_as_text_and_converts_it_once(owner: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "invoice.pdf", "application/pdf", pdf_bytes("Invoice 4711"))
    url = f"/v1/messages/{message.id}/attachments/{attachment.id}/text"
    response = owner.client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert body["AttachmentID"] == attachment.id and body["ContentType"] == "application/pdf"
    assert "Invoice 4711" in body["Text"] and body["Truncated"] is False
    assert AttachmentText.objects.count() == 1
    # The second read is served from the stored text: the stored row is what comes back.
    AttachmentText.objects.update(text="cached")
    assert owner.client.get(url).json()["Text"] == "cached"


def test_an_image_attachment_has_no_text(owner: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 415 and error_code(response) == "unsupported_attachment_type"


def test_an_attachment_over_the_limit_is_too_large(owner: Any, deliver: Any, settings: Any) -> None:
    settings.ATTACHMENT_TEXT_MAX_BYTES = 100
    message, attachment = _with_attachment(deliver, owner, "notes.txt", "text/plain", b"x" * 500)
    response = owner.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 413 and error_code(response) == "attachment_too_large"


def test_another_agents_attachment_text_is_not_found(owner: Any, teammate: Any, deliver: Any) -> None:
    message, attachment = _with_attachment(deliver, owner, "notes.txt", "text/plain", b"secret notes")
    response = teammate.client.get(f"/v1/messages/{message.id}/attachments/{attachment.id}/text")
    assert response.status_code == 404
    other, _ = _with_attachment(deliver, teammate, "mine.txt", "text/plain", b"mine")
    response = teammate.client.get(f"/v1/messages/{other.id}/attachments/{attachment.id}/text")
    assert response.status_code == 404 and error_code(response) == "attachment_not_found"


def test_a_stored_content_read_does_not_parse_the_mime(owner: Any, deliver: Any) -> None:
    message = _deliver_file(deliver, owner, "newsletter-hidden-preheader")
    with CaptureQueriesContext(connection) as queries:
        owner.client.get(f"/v1/messages/{message.id}")
    assert not any("INSERT" in q["sql"] or 'UPDATE "mail_messagecontent"' in q["sql"] for q in queries.captured_queries)


def _received_event(persona: Any) -> dict[str, Any]:
    return Event.objects.filter(agent=persona.agent, type="message.received").latest("seq").payload


def test_the_received_event_of_a_subscribed_agent_carries_extracted_text_and_codes(owner: Any, deliver: Any) -> None:
    Endpoint.objects.create(
        account=owner.agent.account, url="http://127.0.0.1:9/hook", secret="whsec_x", all_agents=True
    )
    message = _deliver_file(deliver, owner, "otp-german")
    payload = _received_event(owner)
    assert payload["MessageID"] == message.id
    assert payload["ExtractedText"] == _expected("otp-german")["extracted_text"]
    assert payload["Codes"] == ["482913"]


def test_the_received_event_caps_extracted_text(owner: Any, deliver: Any) -> None:
    Endpoint.objects.create(
        account=owner.agent.account, url="http://127.0.0.1:9/hook", secret="whsec_x", all_agents=True
    )
    long_body = "Your code is 482913.\n\n" + "word " * 3000
    deliver(build_mail(to=owner.address, subject="Long", body=long_body), to=owner.address)
    payload = _received_event(owner)
    assert len(payload["ExtractedText"]) == EVENT_TEXT_MAX_CHARS and payload["Codes"] == ["482913"]


def test_a_sent_message_gets_its_content_after_commit(owner: Any, post: Any) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Login", "body": "Your code is 555123"})
    message_id = response.json()["MessageID"]

    assert MessageContentRow.objects.get(message_id=message_id).data["codes"] == ["555123"]
    assert owner.client.get(f"/v1/messages/{message_id}").json()["ExtractedText"] == "Your code is 555123"


@pytest.fixture
def no_visibility_lag(settings: Any) -> None:
    # The events API holds back events younger than the lag on PostgreSQL; these tests read
    # the log right after ingest.
    settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = 0


def _read_received(persona: Any) -> list[dict[str, Any]]:
    items = persona.client.get("/v1/events?wait=0").json()["items"]
    return [item["data"] for item in items if item["type"] == "message.received"]


def test_the_event_log_gives_every_agent_extracted_text_and_codes(
    owner: Any, deliver: Any, no_visibility_lag: None
) -> None:
    message = _deliver_file(deliver, owner, "otp-german")
    # No webhook wants it: ingest did not compute the content for the recorded payload.
    assert "ExtractedText" not in _received_event(owner)

    [data] = _read_received(owner)
    assert data["MessageID"] == message.id
    assert data["ExtractedText"] == _expected("otp-german")["extracted_text"]
    assert data["Codes"] == ["482913"]
    assert data["BodyPreview"] == " ".join(_expected("otp-german")["extracted_text"].split())[:256]


def test_the_event_log_computes_content_its_task_has_not_stored_yet(
    owner: Any, deliver: Any, no_visibility_lag: None
) -> None:
    long_body = "Your code is 482913.\n\n" + "word " * 3000
    message = Message.objects.get(
        delivery=deliver(build_mail(to=owner.address, subject="Long", body=long_body), to=owner.address).delivery
    )
    MessageContentRow.objects.filter(message=message).delete()

    [data] = _read_received(owner)
    assert len(data["ExtractedText"]) == EVENT_TEXT_MAX_CHARS and data["Codes"] == ["482913"]
    assert MessageContentRow.objects.filter(message=message).exists()


def test_the_event_log_keeps_the_payload_of_a_deleted_message(
    owner: Any, deliver: Any, no_visibility_lag: None
) -> None:
    message = _deliver_file(deliver, owner, "otp-german")
    Message.objects.filter(pk=message.pk).delete()
    [data] = _read_received(owner)
    assert data["MessageID"] == message.id and "ExtractedText" not in data


def test_a_message_read_with_stored_content_reads_the_message_and_its_content_in_one_query(
    owner: Any, deliver: Any
) -> None:
    message = _deliver_file(deliver, owner, "newsletter-hidden-preheader")
    with CaptureQueriesContext(connection) as queries:
        assert owner.client.get(f"/v1/messages/{message.id}").status_code == 200
    mail_queries = [q["sql"] for q in queries.captured_queries if '"mail_' in q["sql"]]
    assert len(mail_queries) == 1, mail_queries
    assert '"mail_messagecontent"' in mail_queries[0]


def _queries_to_extract(message_ids: list[str]) -> int:
    MessageContentRow.objects.filter(message_id__in=message_ids).delete()
    with CaptureQueriesContext(connection) as queries:
        assert message_contents_extract(message_ids=message_ids) == len(message_ids)
    return len(queries.captured_queries)


def test_the_content_task_costs_the_same_queries_for_one_message_or_many(owner: Any, deliver: Any) -> None:
    ids = [
        Message.objects.get(
            delivery=deliver(build_mail(to=owner.address, subject=f"n{i}", body=f"Code {i}"), to=owner.address).delivery
        ).pk
        for i in range(5)
    ]
    assert _queries_to_extract(ids[:1]) == _queries_to_extract(ids)
    assert MessageContentRow.objects.filter(message_id__in=ids).count() == 5
    assert all(m.body_preview.startswith("Code") for m in Message.objects.filter(pk__in=ids))

"""POST /v1/send: the happy paths through the embedded LocalEmailBackend, and every 400/413."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from mail.models import Message
from mail.storage import raw_read
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def _outbox_files() -> list[Path]:
    return sorted(Path(django_settings.OUTBOX_DIR).glob("*.eml")) if Path(django_settings.OUTBOX_DIR).exists() else []


def test_it_sends_to_an_external_address_through_the_outbox(owner: Any, post: Any) -> None:
    owner.agent.display_name = "Owner Bot"
    owner.agent.save()
    before = len(_outbox_files())

    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Hello", "body": "Hi from Assmbl"})

    assert response.status_code == 202, response.content
    data = response.json()
    assert set(data) == {"MessageID", "Status"}
    assert data["Status"] == "queued"
    message = Message.objects.get(pk=data["MessageID"])
    assert message.direction == Message.Direction.OUTBOUND
    assert message.status == Message.Status.SENT
    assert message.provider_message_id == f"local:{message.id}"
    files = _outbox_files()
    assert len(files) == before + 1
    eml = (Path(django_settings.OUTBOX_DIR) / f"{message.id}.eml").read_bytes()
    assert eml == raw_read(message.storage_key)
    parsed = email.message_from_bytes(eml, policy=policy.default)
    assert parsed["From"] == f"Owner Bot <{owner.address}>"
    assert parsed["To"] == "bob@example.com"
    assert parsed["Subject"] == "Hello"
    assert parsed["Message-ID"] == message.internet_message_id
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi from Assmbl"
    envelope = json.loads((Path(django_settings.OUTBOX_DIR) / f"{message.id}.envelope.json").read_text())
    assert envelope == {"from": owner.address, "to": ["bob@example.com"]}
    assert Event.objects.filter(type="message.sent", agent=owner.agent).count() == 1


def test_it_delivers_to_another_agent_through_the_pipeline(owner: Any, teammate: Any, post: Any) -> None:
    response = post(
        owner,
        "/v1/send",
        {"to": [teammate.address], "cc": "carol@example.com", "subject": "Status", "html": "<p>All <b>good</b></p>"},
    )

    assert response.status_code == 202
    received = Message.objects.get(agent=teammate.agent)
    assert received.direction == Message.Direction.INBOUND
    assert received.sender == owner.address
    assert received.subject == "Status"
    assert received.body_preview == "All good"
    assert received.sender_verified is True
    assert received.delivery.source == "internal"
    assert received.delivery.external_id == f"internal:{response.json()['MessageID']}"
    # The carbon copy to a foreign domain went to the outbox, not to an agent.
    assert (Path(django_settings.OUTBOX_DIR) / f"{response.json()['MessageID']}.eml").exists()


def test_bcc_recipients_get_the_mail_but_are_not_in_the_headers(owner: Any, teammate: Any, post: Any) -> None:
    response = post(
        owner, "/v1/send", {"to": "bob@example.com", "bcc": [teammate.address], "subject": "s", "body": "b"}
    )

    message = Message.objects.get(pk=response.json()["MessageID"])
    assert message.bcc == [teammate.address]
    assert b"Bcc" not in raw_read(message.storage_key)
    assert Message.objects.filter(agent=teammate.agent).count() == 1


def test_it_sets_x_headers_reply_to_and_the_idempotency_header(owner: Any, post: Any) -> None:
    response = post(
        owner,
        "/v1/send",
        {
            "to": "bob@example.com",
            "subject": "s",
            "body": "b",
            "reply_to": "Help Desk <help@example.com>",
            "headers": {"X-Order": "42"},
        },
        **{"Idempotency-Key": "order-42"},
    )

    raw = raw_read(Message.objects.get(pk=response.json()["MessageID"]).storage_key)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["X-Order"] == "42"
    assert parsed["Reply-To"] == "Help Desk <help@example.com>"
    assert parsed["X-AgentMail-Idempotency-Key"] == "order-42"


def test_the_sent_message_is_listed_in_sent_not_in_another_agents(owner: Any, teammate: Any, post: Any) -> None:
    ids = [
        post(owner, "/v1/send", {"to": "bob@example.com", "subject": f"n{i}", "body": "b"}).json()["MessageID"]
        for i in range(3)
    ]

    first = owner.client.get("/v1/sent?limit=2")
    assert first.status_code == 200
    assert [item["MessageID"] for item in first.json()["items"]] == ids[:2]
    assert first.json()["has_more"] is True
    second = owner.client.get(f"/v1/sent?limit=2&cursor={first.json()['next_cursor']}")
    assert [item["MessageID"] for item in second.json()["items"]] == ids[2:]
    assert second.json()["has_more"] is False
    assert second.json()["items"][0]["Direction"] == "outbound"
    assert second.json()["items"][0]["Status"] == "sent"
    assert teammate.client.get("/v1/sent").json()["items"] == []


def test_sent_rejects_bad_listing_parameters(owner: Any) -> None:
    assert owner.client.get("/v1/sent?limit=0").json()["error"]["code"] == "validation_error"
    assert owner.client.get("/v1/sent?limit=101").status_code == 400
    assert owner.client.get("/v1/sent?cursor=not-a-cursor").json()["error"]["code"] == "invalid_cursor"
    assert owner.client.get("/v1/sent?color=red").json()["error"]["code"] == "unknown_parameter"


def test_it_requires_a_token(anonymous: Any) -> None:
    assert (
        anonymous.post("/v1/send", {"to": "a@example.com", "subject": "s", "body": "b"}, format="json").status_code
        == 401
    )


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (
            {"to": "bob@example.com", "subject": "Hi\r\nBcc: victim@example.com", "body": "b"},
            "header_injection",
            "subject",
        ),
        ({"to": "bob@example.com\nBcc: victim@example.com", "subject": "s", "body": "b"}, "header_injection", "to"),
        (
            {"to": "bob@example.com", "subject": "s", "body": "b", "headers": {"X-Evil": "a\rb"}},
            "header_injection",
            "X-Evil",
        ),
        (
            {"to": "bob@example.com", "subject": "s", "body": "b", "reply_to": "x@example.com\r\nX: y"},
            "header_injection",
            "reply_to",
        ),
        ({"to": "not-an-address", "subject": "s", "body": "b"}, "invalid_address", "to"),
        (
            {"to": "bob@example.com", "cc": ["ok@example.com", "bad@@example.com"], "subject": "s", "body": "b"},
            "invalid_address",
            "cc",
        ),
        ({"to": "bob@example.com", "bcc": "nobody", "subject": "s", "body": "b"}, "invalid_address", "bcc"),
        (
            {"to": "bob@example.com", "reply_to": "@example.com", "subject": "s", "body": "b"},
            "invalid_address",
            "reply_to",
        ),
        ({"to": 7, "subject": "s", "body": "b"}, "invalid_address", "to"),
        ({"subject": "s", "body": "b"}, "missing_field", "to"),
        ({"to": "bob@example.com", "body": "b"}, "missing_field", "subject"),
        ({"to": "bob@example.com", "subject": "s"}, "missing_field", "body"),
    ],
)
def test_it_rejects_bad_input_with_the_field_named(
    owner: Any, post: Any, body: dict[str, Any], code: str, field: str
) -> None:
    response = post(owner, "/v1/send", body)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in json.dumps(error["details"])
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "name", ["From", "To", "Subject", "Message-ID", "Content-Type", "X-AgentMail-Idempotency-Key", "X Bad"]
)
def test_it_only_accepts_x_headers(owner: Any, post: Any, name: str) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "s", "body": "b", "headers": {name: "v"}})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_header"


def test_it_rejects_unknown_fields(owner: Any, post: Any) -> None:
    response = post(
        owner, "/v1/send", {"to": "bob@example.com", "subject": "s", "body": "b", "from": "ceo@example.com"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_field"


def test_it_rejects_more_than_fifty_recipients(owner: Any, post: Any) -> None:
    to = [f"r{i}@example.com" for i in range(30)]
    cc = [f"c{i}@example.com" for i in range(21)]

    response = post(owner, "/v1/send", {"to": to, "cc": cc, "subject": "s", "body": "b"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_recipients"
    assert post(owner, "/v1/send", {"to": to, "cc": cc[:20], "subject": "s", "body": "b"}).status_code == 202


@override_settings(MAX_MESSAGE_BYTES=4096)
def test_it_rejects_a_message_over_the_size_limit_with_413(owner: Any, post: Any) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "s", "body": "x" * 8000})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "message_too_large"
    assert not Message.objects.exists()


def test_attachment_ids_go_through_the_attachments_interface(owner: Any, post: Any) -> None:
    response = post(
        owner, "/v1/send", {"to": "bob@example.com", "subject": "s", "body": "b", "attachments": ["att_unknown"]}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "attachment_not_uploaded"


def test_non_ascii_subjects_names_and_bodies_survive_the_round_trip(owner: Any, teammate: Any, post: Any) -> None:
    owner.agent.display_name = "Zoë Agent"
    owner.agent.save()

    post(owner, "/v1/send", {"to": f"Équipe <{teammate.address}>", "subject": "Résumé ✓", "body": "Grüße, 你好"})

    received = Message.objects.get(agent=teammate.agent)
    assert received.subject == "Résumé ✓"
    assert received.from_name == "Zoë Agent"
    assert received.body_preview == "Grüße, 你好"


def test_a_comma_separated_string_is_not_silently_split(owner: Any, post: Any) -> None:
    response = post(owner, "/v1/send", {"to": "a@example.com, b@example.com", "subject": "s", "body": "b"})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "to"


@pytest.mark.parametrize(
    "subject",
    [
        "Hi\x0b\x0cX-Injected: 1",  # VT and FF: line breaks to Python's email package
        "Hi\x1cX-Injected: 1",  # FS: another str.splitlines() boundary
        "Hi\x85X-Injected: 1",  # NEL
        "Hi\u2028X-Injected: 1",  # LINE SEPARATOR
        "Hi\x00there",
        "Hi\x7fthere",
    ],
)
def test_it_refuses_any_control_character_or_line_break_in_the_subject(owner: Any, post: Any, subject: str) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": subject, "body": "b"})

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "header_injection"
    assert response.json()["error"]["details"] == {"field": "subject"}
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "Bob\x00 <bob@example.com>", "subject": "s", "body": "b"}, "to"),
        ({"to": "bob@example.com", "cc": ["Ann\x0b <ann@example.com>"], "subject": "s", "body": "b"}, "cc"),
        ({"to": "bob@example.com", "subject": "s", "body": "b", "headers": {"X-Order": "1\x0c2"}}, "headers.X-Order"),
        ({"to": "bob@example.com", "subject": "s", "body": "b", "headers": {"X-Order": "1\x002"}}, "headers.X-Order"),
    ],
)
def test_it_refuses_control_characters_in_names_and_header_values(
    owner: Any, post: Any, body: dict[str, Any], field: str
) -> None:
    response = post(owner, "/v1/send", body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "header_injection"
    assert response.json()["error"]["details"]["field"] == field
    assert not Message.objects.exists()


@pytest.mark.parametrize("field", ["body", "html"])
def test_it_refuses_a_nul_character_in_the_body_or_html(owner: Any, post: Any, field: str) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "s", field: "a\x00b"})

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_field"
    assert response.json()["error"]["details"] == {"field": field}
    assert not Message.objects.exists()


def test_it_refuses_a_subject_over_998_characters_and_takes_one_of_998(owner: Any, post: Any) -> None:
    huge = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "x" * 900_000, "body": "b"})

    assert huge.status_code == 400
    assert huge.json()["error"]["code"] == "invalid_field"
    assert huge.json()["error"]["details"] == {"field": "subject"}
    assert not Message.objects.exists()
    assert post(owner, "/v1/send", {"to": "bob@example.com", "subject": "x" * 998, "body": "b"}).status_code == 202


def test_it_refuses_a_header_value_over_998_characters(owner: Any, post: Any) -> None:
    body = {"to": "bob@example.com", "subject": "s", "body": "b", "headers": {"X-Long": "v" * 999}}

    response = post(owner, "/v1/send", body)

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "headers.X-Long"}


@pytest.mark.parametrize("subject", [0, True, ["s"], {"s": 1}])
def test_it_refuses_a_subject_that_is_not_a_string(owner: Any, post: Any, subject: Any) -> None:
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": subject, "body": "b"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_field"
    assert response.json()["error"]["details"] == {"field": "subject"}

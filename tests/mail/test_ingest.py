"""The ingestion pipeline: bytes → durable store → delivery → indexed message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mail.ingest import delivery_process
from mail.models import InboundDelivery, Message
from mail.storage import raw_read
from mail.trust import sender_entry_create
from tests.mime import build_mail
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def test_it_stores_and_indexes_a_message(owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address, subject="Invoice 42", body="Please pay the invoice.")
    accepted = deliver(raw, to=owner.address)

    assert accepted.created
    message = Message.objects.get(agent=owner.agent)
    assert message.subject == "Invoice 42"
    assert message.sender == "alice@example.com"
    assert message.from_name == "Alice Example"
    assert message.body_preview == "Please pay the invoice."
    assert message.disposition == Message.Disposition.INBOX
    assert message.size == len(raw)
    assert raw_read(message.storage_key) == raw
    assert InboundDelivery.objects.get().status == InboundDelivery.Status.PROCESSED


def test_it_routes_by_the_envelope_not_the_to_header(owner: Any, teammate: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address)
    deliver(raw, to=teammate.address)

    assert not Message.objects.filter(agent=owner.agent).exists()
    assert Message.objects.filter(agent=teammate.agent).count() == 1


def test_it_indexes_one_message_per_recipient_agent(owner: Any, teammate: Any, deliver: Any) -> None:
    deliver(
        build_mail(to=[owner.address, teammate.address]), to=[owner.address, teammate.address, "nobody@example.org"]
    )

    assert Message.objects.count() == 2
    delivery = InboundDelivery.objects.get()
    assert delivery.outcome == {"owner": "indexed", "teammate": "indexed", "nobody@example.org": "unknown_recipient"}


def test_redelivery_of_the_same_object_makes_no_second_item(owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address)
    first = deliver(raw, to=owner.address, source="ses", external_id="ses:abc")
    second = deliver(raw, to=owner.address, source="ses", external_id="ses:abc")

    assert first.created and not second.created
    assert second.delivery.pk == first.delivery.pk
    assert Message.objects.count() == 1


def test_processing_a_delivery_twice_makes_no_second_item(owner: Any, deliver: Any) -> None:
    accepted = deliver(build_mail(to=owner.address), to=owner.address)
    InboundDelivery.objects.filter(pk=accepted.delivery.pk).update(status=InboundDelivery.Status.STORED)

    delivery_process(accepted.delivery.pk)

    assert Message.objects.count() == 1
    assert Event.objects.filter(type="message.received").count() == 1


# SPF passed for the From's domain: the mail is authenticated for alice@example.com.
ALIGNED = {
    "spf": "pass",
    "spf_domain": "example.com",
    "dkim": "none",
    "dkim_domains": [],
    "single_from": True,
    "source": "local",
}


def test_a_known_idempotency_key_is_recorded_as_a_duplicate(owner: Any, deliver: Any) -> None:
    headers = {"X-AgentMail-Idempotency-Key": "order-7"}
    deliver(build_mail(to=owner.address, body="first", headers=headers), to=owner.address, authentication=ALIGNED)
    second = deliver(
        build_mail(to=owner.address, body="second", headers=headers), to=owner.address, authentication=ALIGNED
    )

    first = Message.objects.in_inbox().get()
    assert first.body_preview == "first"
    second.delivery.refresh_from_db()
    assert second.delivery.outcome == {"owner": "duplicate"}
    assert Event.objects.filter(type="message.received").count() == 1
    # Kept where staff see it, naming the message that holds the key.
    duplicate = Message.objects.get(disposition=Message.Disposition.DUPLICATE)
    assert duplicate.delivery == second.delivery and duplicate.body_preview == "second"
    assert first.id in duplicate.quarantine_reason and "alice@example.com" in duplicate.quarantine_reason
    assert Message.objects.in_moderation_queue().filter(pk=duplicate.pk).exists()


def test_the_same_idempotency_key_for_another_agent_is_not_a_duplicate(owner: Any, teammate: Any, deliver: Any) -> None:
    headers = {"X-AgentMail-Idempotency-Key": "order-7"}
    deliver(build_mail(to=owner.address, headers=headers), to=owner.address, authentication=ALIGNED)
    deliver(build_mail(to=teammate.address, headers=headers), to=teammate.address, authentication=ALIGNED)

    assert Message.objects.in_inbox().count() == 2


def test_a_key_from_an_unauthenticated_sender_deduplicates_nothing(owner: Any, deliver: Any) -> None:
    headers = {"X-AgentMail-Idempotency-Key": "order-7"}
    deliver(build_mail(to=owner.address, body="first", headers=headers), to=owner.address)
    second = deliver(build_mail(to=owner.address, body="second", headers=headers), to=owner.address)

    assert sorted(Message.objects.in_inbox().values_list("body_preview", flat=True)) == ["first", "second"]
    second.delivery.refresh_from_db()
    assert second.delivery.outcome == {"owner": "indexed"}
    assert Event.objects.filter(type="message.received").count() == 2


def test_a_strangers_mail_with_a_key_does_not_hide_the_authenticated_senders_mail_with_it(
    owner: Any, deliver: Any
) -> None:
    # The stranger even writes alice's address in From; nothing authenticates it.
    headers = {"X-AgentMail-Idempotency-Key": "order-7"}
    deliver(build_mail(to=owner.address, body="spoof", headers=headers), to=owner.address)
    deliver(
        build_mail(to=owner.address, sender="Eve <eve@evil.test>", body="eve", headers=headers),
        to=owner.address,
        authentication={**ALIGNED, "spf_domain": "evil.test"},
    )
    real = deliver(build_mail(to=owner.address, body="real", headers=headers), to=owner.address, authentication=ALIGNED)

    real.delivery.refresh_from_db()
    assert real.delivery.outcome == {"owner": "indexed"}
    assert sorted(Message.objects.in_inbox().values_list("body_preview", flat=True)) == ["eve", "real", "spoof"]
    assert Event.objects.filter(type="message.received").count() == 3


def test_a_received_message_emits_an_event_with_the_inbox_item(owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, subject="Ping"), to=owner.address)

    event = Event.objects.get(agent=owner.agent)
    assert event.type == "message.received"
    assert event.payload["Subject"] == "Ping"
    assert event.payload["MessageID"] == Message.objects.get().id


def test_a_message_over_the_header_limit_is_quarantined_with_its_bytes_kept(
    owner: Any, deliver: Any, settings: Any
) -> None:
    settings.MAX_HEADER_BYTES = 2048
    raw = build_mail(to=owner.address, headers={"X-Padding": "x" * 4000})
    deliver(raw, to=owner.address)

    message = Message.objects.get()
    assert message.disposition == Message.Disposition.QUARANTINED
    assert message.parse_status == Message.ParseStatus.FAILED
    assert "header block larger than" in message.quarantine_reason
    assert raw_read(message.storage_key) == raw
    assert Event.objects.get().type == "message.quarantined"


def test_html_only_mail_gets_a_text_preview(owner: Any, deliver: Any) -> None:
    raw = (
        b"From: a@example.com\r\nTo: owner@agents.localhost\r\nSubject: html\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p>Hello <b>world</b></p><script>x()</script></body></html>"
    )
    deliver(raw, to=owner.address)

    assert Message.objects.get().body_preview == "Hello world"


def test_attachments_are_listed_on_the_message(owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address, attachments=[("report.pdf", "application/pdf", b"%PDF-1.4 data")])
    deliver(raw, to=owner.address)

    attachment = Message.objects.get().attachments.get()
    assert (attachment.filename, attachment.content_type, attachment.size) == ("report.pdf", "application/pdf", 13)
    assert attachment.id.startswith("att_")


def test_replies_share_the_thread_of_their_parent(owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, headers={}, subject="Plan"), to=owner.address)
    parent = Message.objects.get()
    reply = build_mail(to=owner.address, subject="Re: Plan", headers={"In-Reply-To": parent.internet_message_id})
    deliver(reply, to=owner.address)

    assert Message.objects.values_list("thread_id", flat=True).distinct().count() == 1


# Headers as written: addresses are parsed before encoded words are decoded, and raw UTF-8
# (RFC 6532) is read as UTF-8.
TESTDATA = Path(__file__).parent / "testdata"


def test_a_block_applies_to_the_address_behind_an_encoded_display_name(owner: Any, deliver: Any) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="blocked.test", action="block")
    deliver((TESTDATA / "encoded-word-address-in-display-name.eml").read_bytes(), to=owner.address)

    message = Message.objects.get()
    assert (message.sender, message.from_name) == ("eve@blocked.test", "ok@fine.test")
    assert message.disposition == Message.Disposition.BLOCKED
    assert not Event.objects.filter(type="message.received").exists()


def test_a_trusted_sender_with_an_encoded_comma_in_the_name_stays_verified(owner: Any, deliver: Any) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="john@trusted.test", action="trust")
    raw = (
        b"From: =?utf-8?q?Doe=2C_John?= <john@trusted.test>\r\nTo: owner@agents.localhost\r\n"
        b"Subject: report\r\n\r\nbody\r\n"
    )
    dkim = {"spf": "none", "dkim": "pass", "dkim_domains": ["trusted.test"], "single_from": True, "source": "local"}
    deliver(raw, to=owner.address, authentication=dkim)

    message = Message.objects.get()
    assert (message.sender, message.from_name) == ("john@trusted.test", "Doe, John")
    assert message.sender_verified is True and message.authentication["aligned"] is True


def test_raw_utf8_headers_are_indexed_as_utf8_and_rules_on_such_addresses_match(owner: Any, deliver: Any) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="jdöe@mächine.example", action="block")
    deliver((TESTDATA / "raw-utf8-headers.eml").read_bytes(), to=owner.address)

    message = Message.objects.get()
    assert message.subject == "Café José naïve reçu"
    assert (message.from_name, message.sender) == ("Jöhn Doe", "jdöe@mächine.example")
    assert message.to == ["märy@exämple.net", "owner@agents.localhost"]
    assert message.disposition == Message.Disposition.BLOCKED


def test_a_raw_utf8_attachment_filename_is_indexed_with_the_name_decoded(owner: Any, deliver: Any) -> None:
    deliver((TESTDATA / "raw-utf8-attachment-filename.eml").read_bytes(), to=owner.address)

    message = Message.objects.get()
    assert message.disposition == Message.Disposition.INBOX and not message.quarantine_reason
    item = owner.client.get(f"/v1/messages/{message.id}").json()
    assert [a["Filename"] for a in item["Attachments"]] == ["ФНС_РФ558.zip"]

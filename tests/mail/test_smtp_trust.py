"""Trust over a real SMTP conversation with the local listener: blocked senders get 550 at
RCPT (envelope) or DATA (header From), and SPF/DKIM are checked with the injected resolver."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest

from mail.models import InboundDelivery, Message
from mail.trust import sender_entry_create
from tests.mime import build_mail


def _smtp(listener: tuple[str, int]) -> smtplib.SMTP:
    client = smtplib.SMTP(*listener, timeout=10)
    client.ehlo("mx.example.com")
    return client


def test_it_refuses_a_blocked_envelope_sender_at_rcpt(smtp_listener: Any, owner: Any, fake_dns: Any) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="spam.test", action="block")

    with _smtp(smtp_listener) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail("bulk@spam.test", [owner.address], build_mail(to=owner.address, sender="bulk@spam.test"))

    code, reason = refused.value.recipients[owner.address]
    assert code == 550 and reason.startswith(b"5.7.1") and b"blocked" in reason
    assert not InboundDelivery.objects.exists()


def test_it_refuses_a_blocked_header_from_at_data(smtp_listener: Any, owner: Any, fake_dns: Any) -> None:
    sender_entry_create(agent=None, address_or_domain="ceo@spam.test", action="block")
    raw = build_mail(to=owner.address, sender="Boss <ceo@spam.test>")

    with _smtp(smtp_listener) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("bounces@innocent.test", [owner.address], raw)

    assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1")
    assert not InboundDelivery.objects.exists()


def test_it_accepts_for_recipients_that_did_not_block_and_stores_the_rest_as_blocked(
    smtp_listener: Any, owner: Any, teammate: Any, fake_dns: Any
) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="alice@example.com", action="block")

    with _smtp(smtp_listener) as client:
        client.sendmail("x@other.test", [owner.address, teammate.address], build_mail(to=owner.address))

    assert Message.objects.get(agent=owner.agent).disposition == "blocked"
    assert Message.objects.get(agent=teammate.agent).disposition == "inbox"


def test_it_verifies_a_dkim_signed_trusted_sender_received_over_smtp(
    smtp_listener: Any, owner: Any, fake_dns: Any, signed_by: Any
) -> None:
    fake_dns.add("example.com", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    sender_entry_create(agent=owner.agent, address_or_domain="alice@example.com", action="trust")
    raw = signed_by(build_mail(to=owner.address, sender="Alice <alice@example.com>"), "example.com")

    with _smtp(smtp_listener) as client:
        client.sendmail("alice@example.com", [owner.address], raw)

    message = Message.objects.get(agent=owner.agent)
    assert message.sender_verified is True
    assert message.authentication["dkim"] == "pass" and message.authentication["dkim_domains"] == ["example.com"]
    assert message.authentication["spf"] == "pass" and message.authentication["aligned"] is True


def test_it_does_not_verify_a_forged_from_of_a_trusted_sender_over_smtp(
    smtp_listener: Any, owner: Any, fake_dns: Any, signed_by: Any
) -> None:
    # The attacker's own domain passes SPF and DKIM; the From claims the trusted CEO.
    fake_dns.add("attacker.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    fake_dns.add("example.com", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    sender_entry_create(agent=owner.agent, address_or_domain="ceo@example.com", action="trust")
    raw = signed_by(build_mail(to=owner.address, sender="CEO <ceo@example.com>"), "attacker.test")
    forged_header = b"Authentication-Results: agents.localhost; dkim=pass header.d=example.com; spf=pass\r\n"

    with _smtp(smtp_listener) as client:
        client.sendmail("x@attacker.test", [owner.address], forged_header + raw)

    message = Message.objects.get(agent=owner.agent)
    assert message.sender_verified is False
    assert message.authentication["dkim"] == "pass" and message.authentication["aligned"] is False
    assert message.authentication["spf"] == "pass" and message.authentication["spf_domain"] == "attacker.test"


def test_it_does_not_let_a_prepended_from_borrow_a_genuine_signature(
    smtp_listener: Any, owner: Any, fake_dns: Any, signed_by: Any
) -> None:
    # The attacker's own mail is genuinely signed by the shared provider (which does not
    # oversign From); a second From on top names a trusted user of that provider.
    fake_dns.add("mail.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    sender_entry_create(agent=owner.agent, address_or_domain="ceo@mail.test", action="trust")
    genuine = signed_by(build_mail(to=owner.address, sender="attacker@mail.test"), "mail.test", oversign_from=False)

    with _smtp(smtp_listener) as client:
        client.sendmail("attacker@mail.test", [owner.address], b"From: CEO <ceo@mail.test>\r\n" + genuine)

    message = Message.objects.get(agent=owner.agent)
    assert message.sender == "ceo@mail.test"
    assert message.sender_verified is False and message.authentication["aligned"] is False
    assert message.authentication["single_from"] is False


def test_it_refuses_a_blocked_header_from_hidden_behind_an_encoded_display_name(
    smtp_listener: Any, owner: Any, fake_dns: Any
) -> None:
    # Decoded first, the display name "ok@fine.test" was taken for the address.
    sender_entry_create(agent=None, address_or_domain="blocked.test", action="block")
    raw = (
        b"From: =?utf-8?q?ok=40fine=2Etest?= <eve@blocked.test>\r\nTo: " + owner.address.encode() + b"\r\n"
        b"Subject: hello\r\n\r\nbody\r\n"
    )

    with _smtp(smtp_listener) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("bounces@innocent.test", [owner.address], raw)

    assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1")
    assert not InboundDelivery.objects.exists()


def test_it_refuses_a_blocked_raw_utf8_header_from_at_data(smtp_listener: Any, owner: Any, fake_dns: Any) -> None:
    # RFC 6532: the address itself in UTF-8, as an SMTPUTF8 client sends it.
    sender_entry_create(agent=None, address_or_domain="josé@exämple.test", action="block")
    raw = f"From: José <josé@exämple.test>\r\nTo: {owner.address}\r\nSubject: hola\r\n\r\nbody\r\n".encode()

    with _smtp(smtp_listener) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("bounces@innocent.test", [owner.address], raw)

    assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1")
    assert not InboundDelivery.objects.exists()

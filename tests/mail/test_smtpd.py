"""The local SMTP listener, through a real SMTP conversation (smtplib)."""

from __future__ import annotations

import smtplib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mail.models import InboundDelivery, Message
from mail.storage import raw_read
from tests.mime import build_mail


def _wait_for(count: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = Message.objects.count()
        if n >= count:
            return n
        time.sleep(0.02)
    return Message.objects.count()


def test_it_accepts_mail_for_an_agent_and_indexes_it(smtp_listener: Any, owner: Any) -> None:
    raw = build_mail(to=owner.address, subject="Over SMTP")
    with smtplib.SMTP(*smtp_listener) as client:
        refused = client.sendmail("alice@example.com", [owner.address], raw)

    assert refused == {}
    assert _wait_for(1) == 1
    message = Message.objects.get()
    assert message.subject == "Over SMTP"
    assert raw_read(message.storage_key) == raw
    assert InboundDelivery.objects.get().envelope_from == "alice@example.com"


def test_it_refuses_an_unknown_agent_with_550(smtp_listener: Any, owner: Any) -> None:
    with smtplib.SMTP(*smtp_listener) as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, _ = client.rcpt("nobody@agents.localhost")
        assert code == 550


def test_it_refuses_a_foreign_domain_with_550(smtp_listener: Any, owner: Any) -> None:
    with smtplib.SMTP(*smtp_listener) as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, _ = client.rcpt("owner@example.org")
        assert code == 550


def test_it_refuses_a_declared_size_over_the_limit_with_552(smtp_listener: Any, owner: Any, settings: Any) -> None:
    settings.MAX_MESSAGE_BYTES = 10_000
    raw = build_mail(to=owner.address, body="x" * 20_000)
    with smtplib.SMTP(*smtp_listener) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
            client.sendmail("alice@example.com", [owner.address], raw)
    assert excinfo.value.smtp_code == 552
    assert Message.objects.count() == 0


def test_it_refuses_undeclared_data_over_the_limit_with_552(smtp_listener: Any, owner: Any, settings: Any) -> None:
    settings.MAX_MESSAGE_BYTES = 10_000
    raw = build_mail(to=owner.address, body="x" * 20_000)
    with smtplib.SMTP(*smtp_listener) as client:
        client.ehlo()
        client.mail("alice@example.com")
        client.rcpt(owner.address)
        code, _ = client.data(raw)
    assert code == 552
    assert InboundDelivery.objects.count() == 0


def test_a_client_retry_after_a_lost_250_stores_the_message_once(smtp_listener: Any, owner: Any) -> None:
    raw = build_mail(to=owner.address)
    for _ in range(2):
        with smtplib.SMTP(*smtp_listener) as client:
            client.sendmail("alice@example.com", [owner.address], raw)

    _wait_for(1)
    time.sleep(0.2)
    assert InboundDelivery.objects.count() == 1
    assert Message.objects.count() == 1


def test_it_holds_many_concurrent_sessions(smtp_listener: Any, owner: Any) -> None:
    def send(i: int) -> dict[str, Any]:
        with smtplib.SMTP(*smtp_listener, timeout=30) as client:
            return client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address, subject=f"n{i}"))

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, range(60)))

    assert all(r == {} for r in results)
    assert _wait_for(60, timeout=20) == 60

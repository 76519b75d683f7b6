"""The listener's DATA check on its event loop (mail.smtp._data_check_cached): behind a
trusted relay, with recipients and senders cached, a mail needs no check thread; every
other case still goes through the thread's full check. Real SMTP conversations."""

from __future__ import annotations

import smtplib
import time
from typing import Any

import pytest

from mail import smtp
from mail.models import Message
from mail.storage import raw_read
from mail.trust import sender_entry_create
from tests.mime import build_mail

VERDICT = b"Authentication-Results: mx.agents.localhost; spf=pass smtp.mailfrom=alice@example.com; dkim=pass header.d=example.com; dmarc=pass\r\n"


@pytest.fixture
def thread_checks(monkeypatch: Any) -> list[str]:
    """The header From of every DATA checked in a thread."""
    seen: list[str] = []
    threaded = smtp._data_check

    def spy(cache: Any, raw: bytes, *args: Any) -> Any:
        seen.append(smtp.header_from_address(smtp.header_block(raw)))
        return threaded(cache, raw, *args)

    monkeypatch.setattr(smtp, "_data_check", spy)
    return seen


@pytest.fixture
def behind_relay(settings: Any) -> None:
    settings.AUTHSERV_ID = "mx.agents.localhost"
    settings.AUTHSERV_TRUSTED_RELAYS = ["127.0.0.1"]
    settings.SMTP_LOOKUP_CACHE_MS = 60_000


def _send(listener: tuple[str, int], raw: bytes, to: str, mail_from: str = "alice@example.com") -> None:
    with smtplib.SMTP(*listener, timeout=10) as client:
        assert client.sendmail(mail_from, [to], raw) == {}


def _message(subject: str, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = Message.objects.filter(subject=subject).first()
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{subject!r} was not indexed")


def test_behind_a_trusted_relay_a_cached_recipient_takes_no_check_thread(
    smtp_listener: Any, owner: Any, behind_relay: None, thread_checks: list[str]
) -> None:
    _send(
        smtp_listener,
        VERDICT + build_mail(to=owner.address, sender="alice@example.com", subject="first"),
        owner.address,
    )
    # RCPT filled the cache (the agent, and nobody blocked for it): DATA needs no thread.
    assert thread_checks == []

    raw = VERDICT + build_mail(to=owner.address, sender="alice@example.com", subject="second")
    _send(smtp_listener, raw, owner.address)

    assert thread_checks == []
    message = _message("second")
    # Stored whole by the committer, with the relay's verdict for this From.
    assert raw_read(message.storage_key) == raw
    assert message.authentication["source"] == "authserv" and message.authentication["aligned"] is True
    assert message.sender_verified is False  # aligned is not trusted: no rule says so


def test_without_a_trusted_relay_every_mail_is_checked_in_a_thread(
    smtp_listener: Any, owner: Any, settings: Any, thread_checks: list[str]
) -> None:
    settings.SMTP_LOOKUP_CACHE_MS = 60_000
    for subject in ("one", "two"):
        _send(
            smtp_listener,
            VERDICT + build_mail(to=owner.address, sender="alice@example.com", subject=subject),
            owner.address,
        )

    assert len(thread_checks) == 2
    assert _message("two").authentication["source"] == "local"


def test_a_blocked_header_from_is_still_refused_behind_the_relay(
    smtp_listener: Any, owner: Any, behind_relay: None, thread_checks: list[str]
) -> None:
    sender_entry_create(agent=owner.agent, address_or_domain="spam.test", action="block")
    _send(
        smtp_listener, VERDICT + build_mail(to=owner.address, sender="alice@example.com", subject="fine"), owner.address
    )

    raw = VERDICT + build_mail(to=owner.address, sender="Boss <ceo@spam.test>", subject="blocked")
    with smtplib.SMTP(*smtp_listener, timeout=10) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@example.com", [owner.address], raw)

    assert refused.value.smtp_code == 550
    # Someone is blocked for this agent, so an uncached From goes to the thread's check.
    assert thread_checks[-1] == "ceo@spam.test"


def test_a_second_from_header_is_not_aligned_on_the_loop_either(
    smtp_listener: Any, owner: Any, behind_relay: None, thread_checks: list[str]
) -> None:
    _send(
        smtp_listener, VERDICT + build_mail(to=owner.address, sender="alice@example.com", subject="warm"), owner.address
    )
    raw = (
        VERDICT
        + b"From: ceo@example.com\r\n"
        + build_mail(to=owner.address, sender="alice@example.com", subject="two froms")
    )
    _send(smtp_listener, raw, owner.address)

    assert thread_checks == []
    message = _message("two froms")
    assert message.authentication["aligned"] is False and message.authentication["single_from"] is False


def test_a_header_block_too_long_for_the_loop_is_checked_in_a_thread(
    smtp_listener: Any, owner: Any, behind_relay: None, thread_checks: list[str]
) -> None:
    padding = {f"X-Relay-Note-{n}": "n" * 900 for n in range(80)}  # 72 KB of headers
    raw = VERDICT + build_mail(to=owner.address, sender="alice@example.com", subject="long head", headers=padding)
    assert len(raw.split(b"\r\n\r\n", 1)[0]) > smtp.LOOP_HEADER_MAX

    _send(smtp_listener, raw, owner.address)

    assert thread_checks == ["alice@example.com"]
    assert _message("long head").authentication["source"] == "authserv"

"""Long lines over real SMTP: the listener takes lines up to ``SMTP_MAX_LINE_BYTES``
(64 KiB) and stores them byte for byte; a longer line is refused with ``552 5.3.4``, a
limit on the message, not 500, a syntax error that some MTAs treat as a broken session."""

from __future__ import annotations

import smtplib
import time
from typing import Any

import pytest

from mail.models import InboundDelivery
from mail.storage import raw_read
from tests.mail.corpus import CORPUS, corpus_required
from tests.mime import build_mail

# The corpus mails with lines over RFC 5321's 1,000 octets (up to 11,677): aiosmtpd's
# default refused each of them with "500 Line too long".
LONG_LINE_MAILS = [
    "flanker/long-links.eml",
    "mime4j/testmsgs/very-very-long-boundary.msg",
    "mime4j/testmsgs/basic-plain-very-long-lines.msg",
    "mail-parser/mail_outlook_1",
]


def _on_the_wire(raw: bytes) -> bytes:
    """``raw`` as an MTA sends it: CRLF line ends, ending with one."""
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return crlf if crlf.endswith(b"\r\n") else crlf + b"\r\n"


def _stored(count: int) -> list[bytes]:
    deadline = time.monotonic() + 5
    while InboundDelivery.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [raw_read(d.storage_key) for d in InboundDelivery.objects.order_by("received_at")]


@pytest.mark.parametrize("name", LONG_LINE_MAILS)
def test_corpus_mails_with_long_lines_are_accepted_and_stored_byte_exact(
    smtp_listener: Any, owner: Any, name: str
) -> None:
    corpus_required()
    raw = _on_the_wire((CORPUS / name).read_bytes())
    assert max(map(len, raw.split(b"\r\n"))) > 998
    with smtplib.SMTP(*smtp_listener, timeout=30) as client:
        assert client.sendmail("relay@example.com", [owner.address], raw) == {}
    assert _stored(1) == [raw]


def test_a_line_of_exactly_the_limit_is_stored_byte_exact(smtp_listener: Any, owner: Any) -> None:
    line = b"x" * (64 * 1024)
    raw = build_mail(to=owner.address, subject="long") + b".dot-stuffed\r\n" + line + b"\r\n"
    with smtplib.SMTP(*smtp_listener, timeout=30) as client:
        assert client.sendmail("relay@example.com", [owner.address], raw) == {}
    assert _stored(1) == [raw]


def test_a_line_over_the_limit_gets_552_5_3_4_and_the_session_carries_on(smtp_listener: Any, owner: Any) -> None:
    raw = build_mail(to=owner.address, subject="too long") + b"y" * (64 * 1024 + 1) + b"\r\n"
    with smtplib.SMTP(*smtp_listener, timeout=30) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("relay@example.com", [owner.address], raw)
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (552, b"5.3.4")
        assert client.noop()[0] == 250
        assert client.sendmail("relay@example.com", [owner.address], build_mail(to=owner.address)) == {}
    assert len(_stored(1)) == 1


def test_the_limit_is_a_setting(smtp_listener: Any, owner: Any, settings: Any) -> None:
    settings.SMTP_MAX_LINE_BYTES = 2048
    raw = build_mail(to=owner.address, subject="2049") + b"z" * 2049 + b"\r\n"
    with smtplib.SMTP(*smtp_listener, timeout=30) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("relay@example.com", [owner.address], raw)
    assert refused.value.smtp_code == 552

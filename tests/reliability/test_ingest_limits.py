"""Item 8 (ingestion side): each limit ends in a 552 or a quarantine with a reason, never
an exception, and without memory growing past a small multiple of the input."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from mail.models import Message
from mail.parsing import parse_mail
from tests.mime import build_mail


def _nested(depth: int) -> bytes:
    body = b"leaf\r\n"
    for i in range(depth):
        b = f"b{i}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="'
            + b
            + b'"\r\n\r\n--'
            + b
            + b"\r\n"
            + body
            + b"\r\n--"
            + b
            + b"--\r\n"
        )
    return b"From: a@example.com\r\nTo: owner@agents.localhost\r\nSubject: deep\r\n" + body


def _many_parts(n: int) -> bytes:
    parts = b"".join(b"--x\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(n))
    return (
        b"From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        + parts
        + b"--x--\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_nested(33), "MIME nesting deeper than 32"),
        (_many_parts(1001), "more than 1000 MIME parts"),
        (
            b"From: a@example.com\r\nX-Big: " + b"y" * 200_000 + b"\r\nSubject: big\r\n\r\nbody\r\n",
            "header block larger than",
        ),
    ],
    ids=["mime-depth-33", "1001-parts", "200kb-header"],
)
@pytest.mark.django_db
def test_a_limit_quarantines_the_message_with_its_reason(raw: bytes, reason: str, owner: Any, deliver: Any) -> None:
    deliver(raw, to=owner.address)
    message = Message.objects.get()
    assert message.disposition == Message.Disposition.QUARANTINED
    assert reason in message.quarantine_reason


def test_depth_32_and_1000_parts_are_still_accepted() -> None:
    assert parse_mail(_nested(31)).parse_status != "failed"
    assert parse_mail(_many_parts(999)).parse_status != "failed"


def test_parsing_a_large_message_keeps_memory_within_a_few_times_its_size() -> None:
    raw = build_mail(
        to="owner@agents.localhost", attachments=[("big.bin", "application/octet-stream", b"\x00" * 5_000_000)]
    )
    tracemalloc.start()
    parse_mail(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Feeding the parser in chunks keeps this under 3x; parsebytes() peaked near 8x.
    assert peak < 3 * len(raw)


# An inbound mail over the cap over SMTP (552) is tests/mail/test_smtpd.py's
# test_it_refuses_undeclared_data_over_the_limit_with_552.

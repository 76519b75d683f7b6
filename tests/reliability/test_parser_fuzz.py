"""Item 7: parser fuzzing. Random bytes and mutated real mails through the ingestion
parser; the only outcomes allowed are a parsed message or a quarantine with a reason,
each within the parse time budget."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mail.models import Message
from mail.parsing import parse_mail
from mail.storage import raw_read
from tests.mail.corpus import real_mails

SEEDS = sorted(real_mails(max_bytes=64_000))


@st.composite
def mutated_mail(draw: Any) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice", "truncate"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\n\n",
                        b"--",
                        b"=?utf-8?B?",
                        b"?=",
                        b"\x00",
                        b"boundary=",
                        b"Content-Type: multipart/mixed; boundary=x\r\n",
                        b"\xff\xfe",
                    ]
                )
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            data[at:] = other[draw(st.integers(0, max(0, len(other) - 1))) :]
        else:
            del data[at:]
    return bytes(data)


def _check(raw: bytes) -> None:
    started = time.monotonic()
    parsed = parse_mail(raw)
    elapsed = time.monotonic() - started
    assert elapsed < settings.PARSE_TIME_BUDGET_SECONDS + 1
    assert parsed.parse_status in {"ok", "defective", "failed"}
    assert (parsed.parse_status == "failed") == bool(parsed.quarantine_reason)
    assert len(parsed.body_preview) <= 256
    for text in (parsed.subject, parsed.from_header, parsed.body_preview):
        text.encode("utf-8")  # storable: no lone surrogates


@pytest.mark.skipif(not SEEDS, reason="no seed mails")
@hsettings(max_examples=6000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(mutated_mail())
def test_mutated_real_mails_parse_or_quarantine(raw: bytes) -> None:
    _check(raw)


@hsettings(max_examples=4000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=4096))
def test_random_bytes_parse_or_quarantine(raw: bytes) -> None:
    _check(raw)


@pytest.mark.skipif(not SEEDS, reason="no seed mails")
@pytest.mark.django_db
@hsettings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(raw=mutated_mail())
def test_mutated_mails_through_the_whole_pipeline_keep_their_bytes(raw: bytes, owner: Any, deliver: Any) -> None:
    accepted = deliver(raw, to=owner.address)
    message = Message.objects.get(delivery=accepted.delivery, agent=owner.agent)
    assert raw_read(message.storage_key) == raw
    assert message.disposition in {Message.Disposition.INBOX, Message.Disposition.QUARANTINED}

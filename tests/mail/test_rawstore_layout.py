"""One layout per storage mode: in local mode every path that stores raw MIME (the SMTP
listener, checked on its event loop or in a thread; a provider's batch; sending) writes a
record of a pack file, and a row written before (a content-addressed file) stays
readable, movable and deletable. Real SMTP conversations and real /v1/send calls."""

from __future__ import annotations

import hashlib
import os
import smtplib
from pathlib import Path
from typing import Any

from mail import packs
from mail.ingest import Arrival, deliveries_accept
from mail.models import Message
from mail.rawstore import rawstore
from mail.storage import mail_storage, raw_delete, raw_exists, raw_move, raw_read
from tests.mail.test_smtp_data_check import VERDICT, _message, _send, behind_relay, thread_checks  # noqa: F401
from tests.mime import build_mail


def test_a_mail_checked_on_the_event_loop_is_a_pack_record(
    smtp_listener: Any,
    owner: Any,
    behind_relay: None,  # noqa: F811
    thread_checks: list[str],  # noqa: F811
) -> None:
    for subject in ("first", "on the loop"):
        _send(smtp_listener, VERDICT + build_mail(to=owner.address, subject=subject), owner.address)

    assert thread_checks == []
    key = _message("on the loop").storage_key
    assert packs.is_pack_key(key) and b"on the loop" in raw_read(key)


def test_without_a_relay_a_mail_checked_in_a_thread_is_a_pack_record(
    smtp_listener: Any,
    owner: Any,
    thread_checks: list[str],  # noqa: F811
) -> None:
    with smtplib.SMTP(*smtp_listener, timeout=10) as client:
        client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address, subject="checked"))

    assert thread_checks and packs.is_pack_key(_message("checked").storage_key)


def test_a_provider_batch_and_a_sent_mail_are_pack_records(owner: Any, post: Any) -> None:
    accepted = deliveries_accept([Arrival(build_mail(to=owner.address, subject="sqs"), "sqs", [owner.address])])
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "sent", "body": "hi"})

    sent = Message.objects.get(pk=response.json()["MessageID"])
    assert packs.is_pack_key(accepted[0].delivery.storage_key)
    assert packs.is_pack_key(sent.storage_key) and b"sent" in raw_read(sent.storage_key)


def test_a_content_addressed_object_an_older_row_points_at_stays_readable() -> None:
    raw = b"Subject: stored before packs\r\n\r\n" + os.urandom(64)
    sha = hashlib.sha256(raw).hexdigest()
    key = f"{sha[:2]}/{sha}.eml"
    path = Path(mail_storage().path(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)

    assert raw_read(key) == raw and key in [o.key for o in rawstore().walk(key[:2])]
    raw_move(key, to_archive=True)
    assert raw_read(key, archived=True) == raw and not path.exists()
    raw_move(key, to_archive=False)
    assert path.read_bytes() == raw
    raw_delete(key)
    assert not raw_exists(key) and not raw_exists(key, archived=True)

"""The listener's group commit and lookup cache, through real SMTP conversations (smtplib)
with the real listener on 127.0.0.1 and the real pipeline behind it."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from celery.signals import task_prerun
from django.db import connection

from directory.models import Account
from directory.services import agent_create, agent_deactivate
from mail.models import InboundDelivery, Message
from mail.trust import sender_entry_create
from tests.mime import build_mail

POISON = "poison@example.com"


def _wait_for_messages(count: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while Message.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return Message.objects.count()


def _data_together(listener: tuple[str, int], envelopes: list[tuple[str, str, bytes]]) -> list[tuple[int, bytes]]:
    """Open one session per (mail from, rcpt, raw), take each up to RCPT, then send every
    DATA at the same moment; returns each session's (code, reply)."""
    barrier = threading.Barrier(len(envelopes))

    def session(envelope: tuple[str, str, bytes]) -> tuple[int, bytes]:
        mail_from, rcpt, raw = envelope
        with smtplib.SMTP(*listener, timeout=30) as client:
            client.ehlo("mx.example.com")
            assert client.mail(mail_from)[0] == 250
            assert client.rcpt(rcpt)[0] == 250
            barrier.wait(timeout=20)
            return client.data(raw)

    with ThreadPoolExecutor(max_workers=len(envelopes)) as pool:
        return list(pool.map(session, envelopes))


@pytest.fixture
def processed_batches() -> Iterator[list[list[str]]]:
    """The delivery ids of every process_deliveries task run (one per committed group)."""
    batches: list[list[str]] = []

    def record(sender: Any = None, args: Any = (), **_: Any) -> None:
        if getattr(sender, "name", "") == "mail.tasks.process_deliveries":
            batches.append(list(args[0]))

    task_prerun.connect(record, weak=False)
    yield batches
    task_prerun.disconnect(record)


@pytest.fixture
def poisoned_inserts() -> Iterator[None]:
    """A real database failure: the INSERT of any delivery from POISON raises, which aborts
    the statement (and the transaction) that carries it."""
    table = InboundDelivery._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.envelope_from = '{POISON}' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; "
                "END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER test_poison BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_poison()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER test_poison BEFORE INSERT ON {table} "
                f"WHEN NEW.envelope_from = '{POISON}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                f"DROP TRIGGER IF EXISTS test_poison{' ON ' + table if connection.vendor == 'postgresql' else ''}"
            )
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION IF EXISTS test_poison()")


def test_it_answers_each_concurrent_session_250_and_indexes_each_message_once(
    smtp_listener: Any, owner: Any, settings: Any, processed_batches: list[list[str]]
) -> None:
    settings.SMTP_GROUP_COMMIT_WAIT_MS = 1000  # let the group fill, so it surely holds several
    mails = [build_mail(to=owner.address, subject=f"group {i}") for i in range(8)]

    replies = _data_together(smtp_listener, [("alice@example.com", owner.address, raw) for raw in mails])

    assert [code for code, _ in replies] == [250] * 8
    assert _wait_for_messages(8) == 8
    time.sleep(0.2)
    assert sorted(Message.objects.values_list("subject", flat=True)) == sorted(f"group {i}" for i in range(8))
    assert InboundDelivery.objects.count() == 8
    ids = [delivery_id for batch in processed_batches for delivery_id in batch]
    assert sorted(ids) == sorted(InboundDelivery.objects.values_list("id", flat=True))
    assert max(len(batch) for batch in processed_batches) > 1, "no two sessions shared a commit"


def test_a_database_failure_answers_451_to_every_session_of_the_group_and_stores_none(
    smtp_listener: Any, owner: Any, settings: Any, poisoned_inserts: None
) -> None:
    settings.SMTP_GROUP_COMMIT_WAIT_MS = 1000
    innocent = [build_mail(to=owner.address, subject=f"innocent {i}") for i in range(4)]
    envelopes = [("alice@example.com", owner.address, raw) for raw in innocent]
    envelopes.insert(2, (POISON, owner.address, build_mail(to=owner.address, subject="poison")))

    replies = _data_together(smtp_listener, envelopes)

    assert [code for code, _ in replies] == [451] * 5
    assert all(reply.startswith(b"4.3.0") for _, reply in replies)
    assert InboundDelivery.objects.count() == 0
    assert Message.objects.count() == 0

    # Each sender retries, as a 4xx asks; without the poison in their group they get in once.
    retried = _data_together(smtp_listener, envelopes[:2] + envelopes[3:])
    assert [code for code, _ in retried] == [250] * 4
    assert _wait_for_messages(4) == 4
    assert sorted(Message.objects.values_list("subject", flat=True)) == [f"innocent {i}" for i in range(4)]


def _rcpt(listener: tuple[str, int], address: str, mail_from: str = "alice@example.com") -> int:
    with smtplib.SMTP(*listener, timeout=10) as client:
        client.ehlo("mx.example.com")
        client.mail(mail_from)
        code, _ = client.rcpt(address)
        return code


def test_a_deactivated_agent_is_refused_once_the_cache_window_has_passed(
    smtp_listener: Any, owner: Any, settings: Any
) -> None:
    settings.SMTP_LOOKUP_CACHE_MS = 500
    assert _rcpt(smtp_listener, owner.address) == 250
    agent_deactivate(agent=owner.agent)

    # Within the window the listener still accepts; the worker routes nothing to the agent.
    with smtplib.SMTP(*smtp_listener, timeout=10) as client:
        assert client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address)) == {}
    delivery = InboundDelivery.objects.get()
    deadline = time.monotonic() + 10
    while delivery.status != InboundDelivery.Status.PROCESSED and time.monotonic() < deadline:
        time.sleep(0.02)
        delivery.refresh_from_db()
    assert delivery.outcome == {owner.address: "unknown_recipient"}
    assert Message.objects.count() == 0

    time.sleep(0.6)
    assert _rcpt(smtp_listener, owner.address) == 550


def test_with_no_cache_window_a_block_takes_effect_at_once(smtp_listener: Any, owner: Any, settings: Any) -> None:
    settings.SMTP_LOOKUP_CACHE_MS = 0
    assert _rcpt(smtp_listener, owner.address, "bulk@spam.test") == 250

    sender_entry_create(agent=owner.agent, address_or_domain="spam.test", action="block")

    assert _rcpt(smtp_listener, owner.address, "bulk@spam.test") == 550


def test_a_newly_blocked_sender_is_refused_once_the_window_has_passed(
    smtp_listener: Any, owner: Any, settings: Any
) -> None:
    settings.SMTP_LOOKUP_CACHE_MS = 500
    assert _rcpt(smtp_listener, owner.address, "bulk@spam.test") == 250

    sender_entry_create(agent=owner.agent, address_or_domain="spam.test", action="block")
    time.sleep(0.6)

    assert _rcpt(smtp_listener, owner.address, "bulk@spam.test") == 550


def test_a_refusal_is_never_cached(smtp_listener: Any, owner: Any, settings: Any) -> None:
    settings.SMTP_LOOKUP_CACHE_MS = 60_000
    assert _rcpt(smtp_listener, "newcomer@agents.localhost") == 550

    agent_create(agent_id="newcomer", account=Account.objects.create(name="newcomer"))

    assert _rcpt(smtp_listener, "newcomer@agents.localhost") == 250


def test_a_newly_blocked_header_from_is_refused_at_data_once_the_window_has_passed(
    smtp_listener: Any, owner: Any, settings: Any
) -> None:
    settings.SMTP_LOOKUP_CACHE_MS = 500
    raw = build_mail(to=owner.address, sender="Boss <ceo@spam.test>")
    with smtplib.SMTP(*smtp_listener, timeout=10) as client:
        assert client.sendmail("bounces@innocent.test", [owner.address], raw) == {}

    sender_entry_create(agent=None, address_or_domain="ceo@spam.test", action="block")
    time.sleep(0.6)

    with smtplib.SMTP(*smtp_listener, timeout=10) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("bounces@innocent.test", [owner.address], build_mail(to=owner.address, sender="ceo@spam.test"))
    assert refused.value.smtp_code == 550


def test_sessions_waiting_on_dns_do_not_queue_behind_a_few_threads(
    smtp_listener: Any, owner: Any, settings: Any
) -> None:
    """SPF/DKIM lookups wait on the network; ten sessions checking at once must be able to
    wait at once (asyncio's default pool would hold six on a two-core machine)."""
    lock = threading.Lock()
    in_flight, most = 0, 0

    def slow_dns(name: str, qtype: str) -> list[Any]:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.3)
        with lock:
            in_flight -= 1
        return []

    settings.TRUST_DNS_RESOLVER = slow_dns
    mails = [build_mail(to=owner.address, subject=f"dns {i}") for i in range(10)]

    replies = _data_together(smtp_listener, [("alice@example.com", owner.address, raw) for raw in mails])

    assert [code for code, _ in replies] == [250] * 10
    assert most >= 8


def test_commits_under_load_are_processed_in_batches_of_at_most_the_batch_limit(
    smtp_listener: Any, owner: Any, settings: Any, processed_batches: list[list[str]]
) -> None:
    settings.SMTP_GROUP_COMMIT_MAX = 1  # one commit per mail: any batch of two spans commits
    settings.SMTP_PROCESS_BATCH_MAX = 3
    # Long enough that only the limit cuts batches; the last, partial one waits it out.
    settings.SMTP_PROCESS_BATCH_WAIT_MS = 2_000
    mails = [build_mail(to=owner.address, subject=f"batch {i}") for i in range(16)]

    replies = _data_together(smtp_listener, [("alice@example.com", owner.address, raw) for raw in mails])

    assert [code for code, _ in replies] == [250] * 16
    assert _wait_for_messages(16) == 16
    ids = [delivery_id for batch in processed_batches for delivery_id in batch]
    assert sorted(ids) == sorted(InboundDelivery.objects.values_list("id", flat=True))
    assert max(len(batch) for batch in processed_batches) <= 3
    assert len(processed_batches) < 16, "every commit was queued alone"


def test_an_idle_listener_queues_a_lone_mail_at_once(
    smtp_listener: Any, owner: Any, settings: Any, processed_batches: list[list[str]]
) -> None:
    settings.SMTP_PROCESS_BATCH_WAIT_MS = 600_000  # batch-mates are waited for only while others commit

    with smtplib.SMTP(*smtp_listener, timeout=10) as client:
        assert client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address)) == {}

    assert _wait_for_messages(1, timeout=10) == 1
    assert processed_batches == [[InboundDelivery.objects.get().id]]


def test_sessions_one_after_another_share_a_batch_and_the_last_is_queued_when_its_window_closes(
    smtp_listener: Any, owner: Any, settings: Any, processed_batches: list[list[str]]
) -> None:
    """A relaying MTA delivers one mail a session, one session after another: no two commit
    together, yet they must not cost a task each."""
    settings.SMTP_PROCESS_BATCH_WAIT_MS = 400
    for i in range(6):
        with smtplib.SMTP(*smtp_listener, timeout=10) as client:
            assert (
                client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address, subject=f"seq {i}"))
                == {}
            )

    assert _wait_for_messages(6, timeout=10) == 6
    ids = [delivery_id for batch in processed_batches for delivery_id in batch]
    assert sorted(ids) == sorted(InboundDelivery.objects.values_list("id", flat=True))
    assert len(processed_batches) < 6, "every session was queued alone"

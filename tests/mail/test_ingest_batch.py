"""Batch ingestion: ``deliveries_accept`` and ``deliveries_process`` keep the rules of one
message at a time (threads, idempotency, trust, events) while sharing their queries."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from directory.models import Sender
from mail.ingest import Arrival, deliveries_accept, deliveries_process
from mail.models import InboundDelivery, Message
from mail.storage import raw_delete
from mail.trust import sender_entry_create
from tests.mail.corpus import corpus_required, real_mails
from tests.mime import build_mail
from webhooks.models import Delivery, Event
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db


def _accept(raws: list[bytes], to: str, **kwargs: Any) -> list[str]:
    return [a.delivery.pk for a in deliveries_accept([Arrival(raw, "smtp", [to], **kwargs) for raw in raws])]


def test_a_batch_of_arrivals_is_one_commit_and_one_task(owner: Any, django_capture_on_commit_callbacks: Any) -> None:
    raws = [build_mail(to=owner.address, subject=f"Batch {i}") for i in range(5)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        accepted = deliveries_accept([Arrival(raw, "smtp", [owner.address]) for raw in raws])

    assert [a.created for a in accepted] == [True] * 5
    assert len(callbacks) == 1  # one process_deliveries task for the whole batch
    callbacks[0]()
    assert sorted(Message.objects.for_agent(owner.agent).values_list("subject", flat=True)) == [
        f"Batch {i}" for i in range(5)
    ]


def test_the_same_bytes_twice_in_one_batch_are_one_delivery(owner: Any) -> None:
    raw = build_mail(to=owner.address)
    first, second = deliveries_accept([Arrival(raw, "smtp", [owner.address]), Arrival(raw, "smtp", [owner.address])])

    assert first.created and not second.created
    assert first.delivery.pk == second.delivery.pk
    assert InboundDelivery.objects.count() == 1


def test_an_accepted_batch_reads_back_only_who_holds_each_external_id(owner: Any) -> None:
    # New deliveries are complete in memory once inserted: the accept reads back two
    # columns a row, and whole rows only for redeliveries (held before, as stored then).
    first = build_mail(to=owner.address, subject="Earlier")
    (earlier,) = deliveries_accept([Arrival(first, "smtp", [owner.address])])
    InboundDelivery.objects.filter(pk=earlier.delivery.pk).update(status=InboundDelivery.Status.PROCESSED)
    raws = [build_mail(to=owner.address, subject=f"New {i}") for i in range(3)]
    arrivals = [Arrival(raw, "smtp", [owner.address]) for raw in raws]
    with CaptureQueriesContext(connection) as captured:
        accepted = deliveries_accept(arrivals)
    # (On PostgreSQL a batch also takes its external ids' advisory locks: a SELECT that reads nothing.)
    selects = [
        q["sql"] for q in captured if q["sql"].lstrip().upper().startswith("SELECT") and "advisory" not in q["sql"]
    ]
    assert len(selects) == 1 and '"envelope_recipients"' not in selects[0]
    assert all(a.created and a.delivery.storage_key for a in accepted)

    again = deliveries_accept([Arrival(first, "smtp", [owner.address]), *arrivals[:1]])
    assert [a.created for a in again] == [False, False]
    assert again[0].delivery.pk == earlier.delivery.pk
    assert again[0].delivery.status == InboundDelivery.Status.PROCESSED
    assert again[1].delivery.pk == accepted[0].delivery.pk


def test_a_reply_in_the_same_batch_joins_its_parents_thread(owner: Any) -> None:
    parent = build_mail(to=owner.address, subject="Plan", headers={"Message-ID": "<plan@example.com>"})
    reply = build_mail(to=owner.address, subject="Re: Plan", headers={"In-Reply-To": "<plan@example.com>"})
    other = build_mail(to=owner.address, subject="Unrelated")
    deliveries_process(_accept([parent, reply, other], owner.address))

    by_subject = {m.subject: m.thread_id for m in Message.objects.for_agent(owner.agent)}
    assert by_subject["Plan"] == by_subject["Re: Plan"]
    assert by_subject["Unrelated"] != by_subject["Plan"]


def test_a_parent_after_its_reply_in_one_batch_joins_the_replys_thread(owner: Any) -> None:
    reply = build_mail(to=owner.address, subject="Re: Late", headers={"In-Reply-To": "<late@example.com>"})
    parent = build_mail(to=owner.address, subject="Late", headers={"Message-ID": "<late@example.com>"})
    deliveries_process(_accept([reply, parent], owner.address))

    assert Message.objects.for_agent(owner.agent).values("thread_id").distinct().count() == 1


def test_an_idempotency_key_repeated_within_a_batch_indexes_once(owner: Any) -> None:
    raws = [
        build_mail(to=owner.address, subject=f"Try {i}", headers={"X-AgentMail-Idempotency-Key": "k-1"})
        for i in range(3)
    ]
    aligned = {"spf": "pass", "spf_domain": "example.com", "dkim": "none", "single_from": True}
    ids = _accept(raws, owner.address, authentication=aligned)
    with CaptureQueriesContext(connection) as captured:
        deliveries = deliveries_process(ids)

    # The keys a batch's mailboxes already hold are read once for the batch.
    lookups = [
        q["sql"]
        for q in captured
        if q["sql"].lstrip().upper().startswith("SELECT") and "idempotency_sender" in q["sql"]
    ]
    assert len(lookups) == 1
    assert Message.objects.for_agent(owner.agent).in_inbox().count() == 1
    assert [d.outcome["owner"] for d in deliveries] == ["indexed", "duplicate", "duplicate"]
    assert Message.objects.for_agent(owner.agent).filter(disposition="duplicate").count() == 2


def test_an_idempotency_key_repeated_within_a_batch_by_unauthenticated_senders_indexes_each(owner: Any) -> None:
    raws = [
        build_mail(to=owner.address, subject=f"Try {i}", headers={"X-AgentMail-Idempotency-Key": "k-1"})
        for i in range(3)
    ]
    deliveries = deliveries_process(_accept(raws, owner.address))

    assert Message.objects.for_agent(owner.agent).in_inbox().count() == 3
    assert [d.outcome["owner"] for d in deliveries] == ["indexed", "indexed", "indexed"]


def test_each_message_of_a_batch_gets_its_own_trust_decision(owner: Any) -> None:
    owner.agent.policy = "allowlist"
    owner.agent.save()
    sender_entry_create(agent=owner.agent, address_or_domain="friend@example.com", action="trust")
    auth = {"spf": "pass", "spf_domain": "example.com", "dkim": "none"}
    raws = [
        build_mail(to=owner.address, sender="friend@example.com", subject="From a friend"),
        build_mail(to=owner.address, sender="stranger@example.com", subject="From a stranger"),
    ]
    deliveries_process(_accept(raws, owner.address, authentication=auth))

    dispositions = dict(Message.objects.for_agent(owner.agent).values_list("subject", "disposition"))
    assert dispositions == {"From a friend": "inbox", "From a stranger": "held"}
    counts = dict(Sender.objects.filter(agent=owner.agent).values_list("address", "message_count"))
    assert counts == {"friend@example.com": 1, "stranger@example.com": 1}


def test_sender_counts_add_up_across_a_batch(owner: Any) -> None:
    raws = [build_mail(to=owner.address, sender="bob@example.com", subject=f"#{i}") for i in range(4)]
    raws.append(build_mail(to=owner.address, sender="carol@example.com"))
    deliveries_process(_accept(raws, owner.address))
    deliveries_process(
        _accept([build_mail(to=owner.address, sender="bob@example.com", subject="again")], owner.address)
    )
    # Known and new senders in one batch: the known rows come from the batch's trust facts.
    deliveries_process(
        _accept(
            [build_mail(to=owner.address, sender=s) for s in ("carol@example.com", "dave@example.com")], owner.address
        )
    )

    counts = dict(Sender.objects.filter(agent=owner.agent).values_list("address", "message_count"))
    assert counts == {"bob@example.com": 5, "carol@example.com": 2, "dave@example.com": 1}


def test_a_batch_reads_its_senders_rows_once_and_counts_known_and_new_ones_in_one_statement(owner: Any) -> None:
    deliveries_process(_accept([build_mail(to=owner.address, sender="bob@example.com")], owner.address))
    senders = ["bob@example.com", "bob@example.com", "carol@example.com", "bob@example.com"]
    ids = _accept(
        [build_mail(to=owner.address, sender=s, subject=f"#{i}") for i, s in enumerate(senders)], owner.address
    )

    with CaptureQueriesContext(connection) as captured:
        deliveries_process(ids)

    statements = [
        q["sql"].lstrip().upper() for q in captured.captured_queries if '"DIRECTORY_SENDER"' in q["sql"].upper()
    ]
    # The trust facts read the rows; one upsert makes the missing rows and adds every count.
    assert [sql.split()[0] for sql in statements] == ["SELECT", "INSERT"]
    assert "ON CONFLICT" in statements[1]
    counts = dict(Sender.objects.filter(agent=owner.agent).values_list("address", "message_count"))
    assert counts == {"bob@example.com": 4, "carol@example.com": 1}


def test_every_message_of_a_batch_makes_its_event_and_webhook_delivery(owner: Any, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    endpoint = endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/hook")
    raws = [build_mail(to=owner.address, subject=f"Event {i}") for i in range(3)]
    deliveries_process(_accept(raws, owner.address))

    events = Event.objects.filter(agent=owner.agent, type="message.received").order_by("seq")
    assert [e.payload["Subject"] for e in events] == ["Event 0", "Event 1", "Event 2"]
    assert Delivery.objects.filter(endpoint=endpoint).count() == 3


def test_queries_per_batch_do_not_grow_with_its_size(owner: Any, teammate: Any) -> None:
    def queries_for(n: int) -> int:
        raws = [build_mail(to=[owner.address, teammate.address], subject=f"{n}-{i}") for i in range(n)]
        ids = [
            a.delivery.pk
            for a in deliveries_accept([Arrival(r, "smtp", [owner.address, teammate.address]) for r in raws])
        ]
        with CaptureQueriesContext(connection) as captured:
            deliveries_process(ids)
        return len(captured.captured_queries)

    # Ten times the mail, a handful more statements: SQLite splits a bulk INSERT into
    # statements of at most 999 parameters; nothing else depends on the batch size.
    assert queries_for(40) - queries_for(4) <= 4
    assert Message.objects.count() == 88


def test_a_delivery_already_indexed_by_a_concurrent_run_keeps_one_message(owner: Any) -> None:
    ids = _accept([build_mail(to=owner.address, subject=f"Race {i}") for i in range(3)], owner.address)
    deliveries_process(ids[1:2])
    # As if the other run's "processed" commit had not happened yet.
    InboundDelivery.objects.filter(pk=ids[1]).update(status=InboundDelivery.Status.STORED)

    deliveries = deliveries_process(ids)

    assert Message.objects.for_agent(owner.agent).count() == 3
    assert {d.outcome["owner"] for d in deliveries} == {"indexed"}


def test_unreadable_bytes_fail_only_their_own_delivery(owner: Any) -> None:
    ids = _accept([build_mail(to=owner.address, subject=f"Disk {i}") for i in range(3)], owner.address)
    lost = InboundDelivery.objects.get(pk=ids[1])
    raw_delete(lost.storage_key)  # the bytes are gone (a lost disk, a bad restore)

    with pytest.raises(OSError):
        deliveries_process(ids)

    statuses = dict(InboundDelivery.objects.values_list("pk", "status"))
    assert statuses == {ids[0]: "processed", ids[1]: "stored", ids[2]: "processed"}
    assert sorted(Message.objects.values_list("subject", flat=True)) == ["Disk 0", "Disk 2"]


def test_a_delivery_that_breaks_its_batch_does_not_hold_back_the_others(owner: Any) -> None:
    ids = _accept([build_mail(to=owner.address, subject=f"Mate {i}") for i in range(3)], owner.address)
    # A row no code path writes (an envelope recipient that is not a string): processing it
    # fails in a batch-wide step, before any unit is indexed.
    InboundDelivery.objects.filter(pk=ids[0]).update(envelope_recipients=[42])

    with pytest.raises(AttributeError):
        deliveries_process(ids)

    assert sorted(Message.objects.values_list("subject", flat=True)) == ["Mate 1", "Mate 2"]
    assert InboundDelivery.objects.get(pk=ids[0]).status == InboundDelivery.Status.STORED


def test_the_whole_broken_mail_corpus_in_one_batch(owner: Any) -> None:
    corpus_required()
    raws = list(dict.fromkeys(real_mails()))
    ids = _accept(raws, owner.address)
    deliveries_process(ids)

    assert not InboundDelivery.objects.exclude(status=InboundDelivery.Status.PROCESSED).exists()
    messages = Message.objects.for_agent(owner.agent)
    assert messages.count() == len(raws)
    assert not messages.exclude(disposition__in=["inbox", "quarantined"]).exists()
    assert not messages.filter(disposition="quarantined", quarantine_reason="").exists()


def test_a_batch_across_accounts_wakes_only_each_agents_own_endpoints(
    owner: Any, teammate: Any, stranger: Any, settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    every_agent = endpoint_create(account=owner.agent.account, url="http://127.0.0.1:9/all")
    teammate_only = endpoint_create(
        account=teammate.agent.account, created_by=teammate.agent, url="http://127.0.0.1:9/tm"
    )
    arrivals = [Arrival(build_mail(to=p.address), "smtp", [p.address]) for p in (owner, teammate, stranger)]
    deliveries_process([a.delivery.pk for a in deliveries_accept(arrivals)])

    woken = sorted(Delivery.objects.values_list("endpoint_id", "event__agent__agent_id"))
    assert woken == sorted([(every_agent.pk, "owner"), (every_agent.pk, "teammate"), (teammate_only.pk, "teammate")])


def test_each_events_item_lists_its_own_attachments_without_reading_them_back(owner: Any) -> None:
    raws = [
        build_mail(
            to=owner.address,
            subject="two",
            attachments=[("a.txt", "text/plain", b"a"), ("b.pdf", "application/pdf", b"%PDF")],
        ),
        build_mail(to=owner.address, subject="none"),
        build_mail(to=owner.address, subject="one", attachments=[("c.csv", "text/csv", b"x,y")]),
    ]
    ids = _accept(raws, owner.address)

    with CaptureQueriesContext(connection) as captured:
        deliveries_process(ids)

    items = {e.payload["Subject"]: e.payload for e in Event.objects.filter(type="message.received")}
    for subject, filenames in (("two", ["a.txt", "b.pdf"]), ("none", []), ("one", ["c.csv"])):
        message = Message.objects.get(subject=subject)
        assert [a["Filename"] for a in items[subject]["Attachments"]] == filenames
        assert sorted(a["AttachmentID"] for a in items[subject]["Attachments"]) == sorted(
            message.attachments.values_list("id", flat=True)
        )
        assert items[subject]["Labels"] == []
    # The new rows are known: no SELECT of labels or attachments while processing.
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert not [sql for sql in selects if "mail_messagelabel" in sql or "mail_attachment" in sql]

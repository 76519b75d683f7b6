"""PostgreSQL-only proofs: concurrent label patches never lose an update, search is served
by the pg_trgm index on Message.search_upper (mail/migrations/0011_search_upper_generated.py),
and an unread page is read from the unread mail alone."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from mail.models import Message, MessageLabel
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]


def _run_concurrently(workers: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = workers[i]()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_label_patches_never_lose_an_update(transactional_db: Any, owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    url = f"/v1/messages/{message.id}/labels"

    def patcher(i: int) -> Any:
        def work() -> int:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.token}")
            return int(client.patch(url, {"add": [f"l{i}"]}, format="json").status_code)

        return work

    results = _run_concurrently([patcher(i) for i in range(8)])
    assert results == [200] * 8
    assert sorted(MessageLabel.objects.filter(message=message).values_list("name", flat=True)) == sorted(
        f"l{i}" for i in range(8)
    )


def test_concurrent_patches_never_exceed_20_labels(transactional_db: Any, owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    MessageLabel.objects.bulk_create([MessageLabel(message=message, name=f"base{i}") for i in range(18)])
    url = f"/v1/messages/{message.id}/labels"

    def patcher(i: int) -> Any:
        def work() -> int:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.token}")
            return int(client.patch(url, {"add": [f"new{i}"]}, format="json").status_code)

        return work

    results = _run_concurrently([patcher(i) for i in range(6)])
    # Without the row lock each patch would see 18 labels and all six would succeed.
    assert sorted(results) == [200, 200, 400, 400, 400, 400]
    assert MessageLabel.objects.filter(message=message).count() == 20


def test_search_uses_the_trigram_index(db: Any, owner: Any) -> None:
    MessageFactory.create_batch(50, agent=owner.agent)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'mail_message' AND indexname LIKE '%%trgm'")
        names = {row[0] for row in cursor.fetchall()}
        # to, cc: q's to: and cc: (mail/migrations/0012_search_grammar.py)
        assert names == {"mail_message_search_trgm", "mail_message_to_trgm", "mail_message_cc_trgm"}
        cursor.execute("SET LOCAL enable_seqscan = off")
        # Unordered: the listing order is served by another index; this asks what serves the match.
        sql, params = Message.objects.search("invoice").order_by().query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "mail_message_search_trgm" in plan, plan


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("params", [{"is_read": "false"}, {"q": "is:unread"}, {"q": "-is:read"}])
def test_an_unread_page_reads_only_unread_mail(db: Any, owner: Any, params: dict[str, str]) -> None:
    """GET /v1/inbox?is_read=false (and q's is:unread, -is:read) walks the unread mail in
    the listing order, from the unread table (docs/decisions/0042-unread-table.md), not the
    whole mailbox with the read mail filtered out. Agents read old mail first, so the
    unread mail is the newest: a walk from the oldest reads every read row before the
    first unread one (98 % of a 1M mailbox, 690 ms)."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = MessageFactory.build_batch(400, agent=owner.agent, is_read=True)
    rows += MessageFactory.build_batch(8, agent=owner.agent, is_read=False)
    for minutes, row in enumerate(rows):
        row.received_at = base + dt.timedelta(minutes=minutes)
    Message.objects.bulk_create(rows)
    with CaptureQueriesContext(connection) as queries:
        response = owner.client.get("/v1/inbox", {**params, "limit": 3})
    assert [item["MessageID"] for item in response.json()["items"]] == [row.id for row in rows[400:403]]
    [page] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "mail_message"."id"')]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_message")
        cursor.execute("ANALYZE mail_messageunread")
        # As at a million rows, where a sort of all of a mailbox's unread mail costs more
        # than the walk the planner expects to stop early: the plan must give the order.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {page}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scans = [n for n in _plan_nodes(plan[0]["Plan"]) if n.get("Relation Name") == "mail_message"]
    read = sum((n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"] for n in scans)
    assert read <= 4, json.dumps(plan, indent=1)


def test_search_treats_wildcards_literally_on_postgres(db: Any, owner: Any) -> None:
    hit = MessageFactory(agent=owner.agent, subject="100% sure", body_preview="", sender="a@example.com")
    MessageFactory(agent=owner.agent, subject="100 sure", body_preview="", sender="b@example.com")
    response = owner.client.get("/v1/inbox", {"q": "0%"})
    assert [item["MessageID"] for item in response.json()["items"]] == [hit.id]


def _client(persona: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {persona.token}")
    return client


def test_concurrent_archives_of_one_message_give_one_200_and_409s(transactional_db: Any, owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    url = f"/v1/messages/{message.id}/archive"

    def work() -> int:
        return int(_client(owner).patch(url, {"archived": True}, format="json").status_code)

    assert sorted(_run_concurrently([work] * 4)) == [200, 409, 409, 409]


def test_concurrent_deletes_of_copies_sharing_one_object_delete_it(
    transactional_db: Any, owner: Any, teammate: Any
) -> None:
    from mail import storage
    from mail.ingest import delivery_accept
    from tests.mime import build_mail

    raw = build_mail(to=[owner.address, teammate.address])
    accepted = delivery_accept(raw=raw, source="smtp", envelope_recipients=[owner.address, teammate.address])
    copies = {m.agent_id: m for m in Message.objects.filter(delivery=accepted.delivery)}
    assert len(copies) == 2

    def deleter(persona: Any) -> Any:
        return lambda: int(_client(persona).delete(f"/v1/messages/{copies[persona.agent.pk].id}").status_code)

    assert _run_concurrently([deleter(owner), deleter(teammate)]) == [204, 204]
    # Row locks on every copy serialise the two deletes: the second sees it was the last.
    assert not storage.raw_exists(accepted.delivery.storage_key)

"""PostgreSQL-only: flipping the read state is a HOT update (no index of mail_message names
is_read, and its pages keep room for a new version), and the unread count is answered
from the narrow table's index alone (docs/decisions/0042-unread-table.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mail.models import Message
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]


def _one(sql: str, params: Any = ()) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def test_no_index_of_mail_message_names_is_read(db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'mail_message'")
        naming = [(name, definition) for name, definition in cursor.fetchall() if "is_read" in definition]
    assert naming == []


def test_mail_message_keeps_room_on_its_pages_for_a_new_version(db: Any) -> None:
    options = _one("SELECT reloptions FROM pg_class WHERE relname = 'mail_message'")
    assert "fillfactor=90" in (options or [])


def test_the_first_read_flip_of_a_new_message_can_be_a_hot_update(db: Any, owner: Any) -> None:
    messages = MessageFactory.create_batch(3, agent=owner.agent)
    hot_before = _one("SELECT pg_stat_get_xact_tuples_hot_updated('mail_message'::regclass)")
    response = owner.client.post(
        "/v1/messages/batch", {"ids": [m.id for m in messages], "is_read": True}, format="json"
    )
    assert response.status_code == 200
    # HOT needs room on the row's page: fillfactor 90 leaves about one new version's room a
    # page, and rows other tests left (dead or alive) share these pages, so not every flip
    # finds it. With is_read in an index none could be HOT.
    assert _one("SELECT pg_stat_get_xact_tuples_hot_updated('mail_message'::regclass)") - hot_before >= 1
    assert Message.objects.filter(is_read=True).count() == 3


def test_the_unread_count_reads_only_the_narrow_tables_index(db: Any, owner: Any) -> None:
    MessageFactory.create_batch(5, agent=owner.agent)
    with CaptureQueriesContext(connection) as queries:
        response = owner.client.get("/v1/inbox/unread-count")
    assert response.json() == {"unread_count": 5}
    [count] = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_messageunread")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {count}")
        plan = cursor.fetchone()[0]
    text = json.dumps(plan)
    assert 'mail_message"' not in text.replace("mail_messageunread", ""), text
    # Index-only or a bitmap of the same index: which one depends on the visibility map of
    # rows this transaction just wrote, not on the query.
    assert "mail_unread_agent_received" in text, text

"""assmbl/pgarrays.py: the array dumper that batched inserts use on PostgreSQL must send
exactly the values it was given, whatever quotes, backslashes and spaces they hold."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from psycopg.adapt import PyFormat

from assmbl.pgarrays import QuotingListDumper
from webhooks.models import Event

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

AWKWARD = [
    'say "hi"',
    "C:\\path\\to\\file",
    '\\"',
    "",
    "NULL",
    "null",
    "{braces}, and a comma",
    "  leading and trailing  ",
    "tab\there\nnewline",
    "\u3000ideographic space\u2028",
    "é ü 中文 🙂",
    None,
]


def test_it_is_the_dumper_every_connection_uses_for_lists(db: None) -> None:
    connection.ensure_connection()
    assert connection.connection.adapters.get_dumper(list, PyFormat.TEXT) is QuotingListDumper


def test_text_arrays_round_trip_through_the_server(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [AWKWARD])
        assert cursor.fetchone()[0] == AWKWARD


def test_arrays_of_other_types_and_empty_ones_round_trip(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::int[], %s::text[], %s::text[]", [[1, None, -3], [], [None]])
        assert cursor.fetchone() == ([1, None, -3], [], [None])


def test_a_batched_insert_of_json_keeps_every_quote_and_backslash(owner: Any) -> None:
    agent = owner.agent
    payloads = [
        {"Subject": value, "n": n, "nested": {"quote": '"', "backslash": "\\"}} for n, value in enumerate(AWKWARD)
    ]
    Event.objects.bulk_create([Event(agent=agent, type="message.received", payload=p) for p in payloads])

    stored = sorted(Event.objects.filter(agent=agent).values_list("payload", flat=True), key=lambda p: p["n"])
    assert stored == payloads

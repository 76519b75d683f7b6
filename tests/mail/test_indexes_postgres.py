"""PostgreSQL-only: the tables every ingested mail writes keep no index that a composite
index already covers, and no varchar_pattern_ops copy of an id that nothing queries by
prefix (mail 0008 and the label rows' migration, webhooks 0003, directory 0004). Checked by
definition, not by name."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

TABLES = ("mail_message", "mail_messagelabel", "mail_inbounddelivery", "webhooks_event", "directory_sender")


def _indexes() -> dict[str, list[str]]:
    """table -> the column lists of its indexes, as pg_indexes shows them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [list(TABLES)])
        rows = cursor.fetchall()
    out: dict[str, list[str]] = {table: [] for table in TABLES}
    for table, definition in rows:
        out[table].append(definition.split(" USING ", 1)[1])
    return out


def test_no_foreign_key_has_an_index_that_a_composite_one_covers(db: None) -> None:
    indexes = _indexes()
    for table, column in (
        ("mail_message", "agent_id"),
        ("mail_message", "delivery_id"),
        # Every label added writes each index of its row (a batch: 100 at once).
        ("mail_messagelabel", "message_id"),
        ("webhooks_event", "agent_id"),
        ("directory_sender", "agent_id"),
    ):
        assert f"btree ({column})" not in indexes[table], (table, column)
        # ... and the composite index that serves its lookups is there.
        assert any(d.startswith(f"btree ({column}, ") for d in indexes[table]), (table, column)


def test_no_id_keeps_a_pattern_ops_copy(db: None) -> None:
    copies = [(t, d) for t, defs in _indexes().items() for d in defs if "varchar_pattern_ops" in d]
    assert copies == []

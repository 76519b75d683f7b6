"""pg_trgm GIN expression indexes for GET /v1/inbox?q=... (PostgreSQL only).

``MessageQuerySet.search`` compiles ``icontains`` to ``UPPER(col::text) LIKE UPPER(%s)``
on PostgreSQL; a trigram GIN index on ``UPPER(col)`` serves that LIKE with a leading
wildcard, so search stays an index scan at a million messages. SQLite uses the plain
lookup, so the migration is a no-op there.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

_COLUMNS = ("subject", "body_preview", "sender", "from_name")


def _index(column: str) -> str:
    return f"mail_message_{column}_trgm"


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in _COLUMNS:
        # The expression must match what Django emits for icontains: UPPER("col"::text).
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {_index(column)} ON mail_message '
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in _COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {_index(column)}")


class Migration(migrations.Migration):
    dependencies = [("mail", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]

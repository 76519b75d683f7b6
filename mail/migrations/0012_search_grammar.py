"""The indexes of q's search grammar (mail.search).

PostgreSQL: ``body:`` searches ``mail_messagecontent.body_search``, a generated column
``to_tsvector('simple', ...)`` of the content row's Text (its first BODY_INDEX_MAX_CHARS
characters) with a GIN index; ``to:``, ``cc:`` and ``filename:`` get pg_trgm GIN indexes on
the expression Django emits for ``icontains`` (``UPPER(col::text)``), as 0002 gave the bare
term's columns. SQLite: ``body:`` searches the FTS5 table ``mail_messagecontent_fts``, which
triggers on mail_messagecontent keep equal to the content rows (a row is found again by an
FTS query on its message_id, whose tokens are indexed, not by a scan). Both are written by
the statement that writes the content row, so in its transaction, whoever writes it.

Neither can be a model field: a tsvector and an FTS5 table exist on one engine each, and the
expression of a GeneratedField would have to compile on both. A migration that remakes
mail_messagecontent on SQLite (Django does for most column changes) drops the triggers:
tests/mail/test_search.py checks that they exist after every migration has run.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

MAX_CHARS = 200_000  # mail.search.BODY_INDEX_MAX_CHARS when this migration was written

_PG_FORWARDS = [
    "ALTER TABLE mail_messagecontent ADD COLUMN body_search tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('simple'::regconfig, left(coalesce(data ->> 'text', ''), {MAX_CHARS}))) STORED",
    "CREATE INDEX mail_content_body_search ON mail_messagecontent USING gin (body_search)",
    'CREATE INDEX IF NOT EXISTS mail_message_to_trgm ON mail_message USING gin ((UPPER("to"::text)) gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS mail_message_cc_trgm ON mail_message USING gin ((UPPER("cc"::text)) gin_trgm_ops)',
    "CREATE INDEX IF NOT EXISTS mail_attachment_filename_trgm ON mail_attachment "
    'USING gin ((UPPER("filename"::text)) gin_trgm_ops)',
]
_PG_BACKWARDS = [
    "DROP INDEX IF EXISTS mail_attachment_filename_trgm",
    "DROP INDEX IF EXISTS mail_message_cc_trgm",
    "DROP INDEX IF EXISTS mail_message_to_trgm",
    "ALTER TABLE mail_messagecontent DROP COLUMN IF EXISTS body_search",
]

_BODY = f"substr(coalesce(json_extract(new.data, '$.text'), ''), 1, {MAX_CHARS})"
# FTS5 reads '"msg 01..."' as the phrase of the id's tokens: the one row of that message.
_ROW_OF_OLD = "mail_messagecontent_fts MATCH 'message_id : \"' || old.message_id || '\"'"
_SQLITE_FORWARDS = [
    "CREATE VIRTUAL TABLE mail_messagecontent_fts USING fts5"
    "(message_id, body, tokenize = 'unicode61 remove_diacritics 0')",
    "CREATE TRIGGER mail_messagecontent_fts_insert AFTER INSERT ON mail_messagecontent BEGIN "
    f"INSERT INTO mail_messagecontent_fts (message_id, body) VALUES (new.message_id, {_BODY}); END",
    "CREATE TRIGGER mail_messagecontent_fts_update AFTER UPDATE ON mail_messagecontent BEGIN "
    f"DELETE FROM mail_messagecontent_fts WHERE {_ROW_OF_OLD}; "
    f"INSERT INTO mail_messagecontent_fts (message_id, body) VALUES (new.message_id, {_BODY}); END",
    "CREATE TRIGGER mail_messagecontent_fts_delete AFTER DELETE ON mail_messagecontent BEGIN "
    f"DELETE FROM mail_messagecontent_fts WHERE {_ROW_OF_OLD}; END",
    # Content extracted before this migration.
    "INSERT INTO mail_messagecontent_fts (message_id, body) SELECT message_id, "
    f"substr(coalesce(json_extract(data, '$.text'), ''), 1, {MAX_CHARS}) FROM mail_messagecontent",
]
_SQLITE_BACKWARDS = [
    "DROP TRIGGER IF EXISTS mail_messagecontent_fts_insert",
    "DROP TRIGGER IF EXISTS mail_messagecontent_fts_update",
    "DROP TRIGGER IF EXISTS mail_messagecontent_fts_delete",
    "DROP TABLE IF EXISTS mail_messagecontent_fts",
]


def _run(schema_editor: Any, statements: dict[str, list[str]]) -> None:
    for statement in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


def forwards(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"postgresql": _PG_FORWARDS, "sqlite": _SQLITE_FORWARDS})


def backwards(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"postgresql": _PG_BACKWARDS, "sqlite": _SQLITE_BACKWARDS})


class Migration(migrations.Migration):
    dependencies = [("mail", "0011_search_upper_generated")]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["agent", "size"], name="mail_message_agent_size"),
        ),
        migrations.RunPython(forwards, backwards),
    ]

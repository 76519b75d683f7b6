"""Message.search_upper becomes a model field (a stored GeneratedField) on SQLite and
PostgreSQL, and the one trigram index of GET /v1/inbox?q=... is on it.

On PostgreSQL the column already exists, added outside the model by 0006_search_mid with
the same content: it is dropped first and added back as the model declares it. The four
per-column trigram indexes of 0002_inbox_api_search give way to mail_message_search_trgm:
the search (MessageQuerySet.search) tests search_upper alone, and each GIN index costs
every insert. Adding the column rewrites mail_message (about a minute per million rows,
under an exclusive lock) and the index is built in the same transaction: run it in a
maintenance window on a large installation.
"""

from __future__ import annotations

import importlib
from typing import Any

import django.db.models.functions.text
from django.db import migrations, models

_COLUMNS = ("subject", "body_preview", "sender", "from_name")
_OLD = importlib.import_module("mail.migrations.0006_search_mid")


def drop_unmanaged_column(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE mail_message DROP COLUMN IF EXISTS search_upper")


def index_search_upper(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS mail_message_search_trgm ON mail_message USING gin (search_upper gin_trgm_ops)"
    )
    for column in _COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS mail_message_{column}_trgm")


def index_columns(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in _COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS mail_message_{column}_trgm ON mail_message "
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )
    schema_editor.execute("DROP INDEX IF EXISTS mail_message_search_trgm")


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0010_message_content"),
    ]

    operations = [
        migrations.RunPython(drop_unmanaged_column, _OLD.forwards),
        migrations.AddField(
            model_name="message",
            name="search_upper",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Concat(
                    django.db.models.functions.text.Upper("subject"),
                    models.Value("\x01"),
                    django.db.models.functions.text.Upper("body_preview"),
                    models.Value("\x01"),
                    django.db.models.functions.text.Upper("sender"),
                    models.Value("\x01"),
                    django.db.models.functions.text.Upper("from_name"),
                    output_field=models.TextField(),
                ),
                output_field=models.TextField(),
            ),
        ),
        migrations.RunPython(index_search_upper, index_columns),
    ]

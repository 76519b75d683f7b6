"""Message.search_upper writes a column's own U+0001 (SEARCH_SEPARATOR) as a double quote
(SEPARATOR_STANDIN), so that every row holds exactly three separators and ``from:`` and
``subject:`` are one regular expression each on PostgreSQL (mail.search._in_columns).
Before, a row whose columns held the separator could be missed by that expression, so each
operator also carried an OR branch for such rows: a second scan of the trigram index, and
two more patterns for the planner to match against the histogram.

The statistics target of search_upper goes from 3,000 (0020_search_statistics) to
SEARCH_UPPER_TARGET: the planner matches each pattern of a search against every row of the
histogram, which cost 1-10 ms a pattern at 3,000 (docs/decisions/0041-search-estimates.md).

A generated column's expression cannot be altered (Django, and PostgreSQL before 17): the
column is dropped and added back, which rewrites mail_message (about a minute per million
rows, under an exclusive lock), and its trigram index is built again in the same
transaction: run it in a maintenance window on a large installation.
"""

from __future__ import annotations

from typing import Any

import django.db.models.functions.text
from django.db import migrations, models

SEARCH_UPPER_TARGET = 1000
_OLD_TARGET = 3000
_INDEX = "CREATE INDEX IF NOT EXISTS mail_message_search_trgm ON mail_message USING gin (search_upper gin_trgm_ops)"


def _search_upper() -> models.GeneratedField:
    parts: list[Any] = []
    for name in ("subject", "body_preview", "sender", "from_name"):
        upper = django.db.models.functions.text.Upper(name)
        column = django.db.models.functions.text.Replace(
            upper, models.Value("\x01"), models.Value('"'), output_field=models.TextField()
        )
        parts += [models.Value("\x01"), column] if parts else [column]
    return models.GeneratedField(
        db_persist=True,
        expression=django.db.models.functions.text.Concat(*parts, output_field=models.TextField()),
        output_field=models.TextField(),
    )


def _index(schema_editor: Any, target: int) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(_INDEX)
    schema_editor.execute(f"ALTER TABLE mail_message ALTER COLUMN search_upper SET STATISTICS {target}")
    schema_editor.execute("ANALYZE mail_message (search_upper)")


def forwards(apps: Any, schema_editor: Any) -> None:
    _index(schema_editor, SEARCH_UPPER_TARGET)


def backwards(apps: Any, schema_editor: Any) -> None:
    _index(schema_editor, _OLD_TARGET)


class Migration(migrations.Migration):
    dependencies = [("mail", "0020_search_statistics")]

    # Run backwards, the last operation puts back the old column's index and target.
    operations = [
        migrations.RunPython(migrations.RunPython.noop, backwards),
        migrations.RemoveField(model_name="message", name="search_upper"),
        migrations.AddField(model_name="message", name="search_upper", field=_search_upper()),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]

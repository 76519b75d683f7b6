"""mail_message.search_upper for the walk of GET /v1/inbox?q=... (PostgreSQL only; superseded by
0011_search_upper_generated, where the column becomes a model field).

``MessageQuerySet.search_first`` walks a mailbox in listing order and tests each row
(``_search_walk``): the test there is ``search_upper LIKE UPPER(%s)`` on this column, the
four searched columns (subject, body_preview, sender, from_name) upper-cased once at
write time and joined by U+0001, instead of four ``UPPER(col) LIKE ...`` per row. UPPER()
is most of the walk's cost (17k rows: 34 ms with the four UPPERs, 18 ms on this column,
bench/HISTORY.md "api.py"), which is what lets a mid-frequency term (0.1-2 % of the
mailbox) walk to its page instead of paying the trigram bitmap.

A stored generated column: PostgreSQL keeps it right on every INSERT and UPDATE,
whoever writes, so no writer has to know it exists; it is not a model field, and Django
never reads it except through that walk. No index: it is only read row by row in the
order of mail_message_agent_inbox; the trigram indexes of 0002 still serve the bitmap.
SQLite tests the columns directly, so the migration is a no-op there.

Adding the column rewrites mail_message (about a minute per million rows, under an
exclusive lock): run it in a maintenance window on a large installation. A later
migration that changes the type of one of the four columns must drop the column first and
add it back (PostgreSQL refuses to alter a column a generated column reads).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

_COLUMNS = ("subject", "body_preview", "sender", "from_name")


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    # UPPER(col::text) per column, as Django's icontains compiles it, so that the joined
    # text holds exactly the strings the per-column test looks in.
    joined = " || E'\\x01' || ".join(f"COALESCE(UPPER(\"{column}\"::text), '')" for column in _COLUMNS)
    schema_editor.execute(
        f"ALTER TABLE mail_message ADD COLUMN IF NOT EXISTS search_upper text GENERATED ALWAYS AS ({joined}) STORED"
    )


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE mail_message DROP COLUMN IF EXISTS search_upper")


class Migration(migrations.Migration):
    dependencies = [("mail", "0005_search_labels")]

    operations = [migrations.RunPython(forwards, backwards)]

"""The unread mail's index leaves mail_message: a narrow table (MessageUnread) kept by
triggers (mail.unread), and mail_message gets room on its pages for HOT updates.

``is_read`` was in the predicate of mail_message_inbox_unread, so no UPDATE of it could be
HOT: each one wrote a new entry into every index of the row, the three pg_trgm GINs
included (a 100-id batch: 48-86 ms of its UPDATE under load). With the index gone, is_read
is in no index of mail_message, and the flip is HOT when the row's page has room for the
new version: FILLFACTOR leaves that room on the pages written from now on (existing pages
keep theirs until a rewrite: VACUUM FULL or pg_repack). docs/decisions/0042-unread-table.md.
"""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

from mail.unread import unread_backfill, unread_triggers_create, unread_triggers_drop

# One new version of a ~700-byte row per ten rows on a page (PostgreSQL only).
FILLFACTOR = 90


def forwards(apps: Any, schema_editor: Any) -> None:
    unread_triggers_create(schema_editor=schema_editor)
    unread_backfill(schema_editor=schema_editor)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE mail_message SET (fillfactor = {FILLFACTOR})")


def backwards(apps: Any, schema_editor: Any) -> None:
    unread_triggers_drop(schema_editor=schema_editor)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE mail_message RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('directory', '0007_outbound_policy'),
        ('mail', '0021_search_upper_exact_separators'),
    ]

    operations = [
        migrations.CreateModel(
            name='MessageUnread',
            fields=[
                ('message', models.OneToOneField(on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='unread_row', serialize=False, to='mail.message')),
                ('received_at', models.DateTimeField()),
                ('agent', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='directory.agent')),
            ],
            options={
                'indexes': [models.Index(fields=['agent', 'received_at', 'message'], name='mail_unread_agent_received')],
            },
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveIndex(
            model_name='message',
            name='mail_message_inbox_unread',
        ),
    ]

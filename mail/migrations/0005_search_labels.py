"""Label rows carry copies of their message's agent, received_at and archived flag,
indexed as (agent, name, received_at, message), once whole and once without archived
rows: GET /v1/inbox?label=... then walks one mailbox's label rows in listing order
(MessageQuerySet.with_label) instead of the whole inbox.

Existing rows are backfilled from their message before the columns become NOT NULL;
the UPDATE uses correlated subqueries so it runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps: Any, schema_editor: Any) -> None:
    Message = apps.get_model("mail", "Message")
    MessageLabel = apps.get_model("mail", "MessageLabel")
    message = Message.objects.using(schema_editor.connection.alias).filter(pk=OuterRef("message_id"))
    MessageLabel.objects.using(schema_editor.connection.alias).update(
        agent_id=Subquery(message.values("agent_id")[:1]),
        received_at=Subquery(message.values("received_at")[:1]),
        archived=Subquery(message.values("archived")[:1]),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("directory", "0003_merge_trust_webhooks"),
        ("mail", "0004_inbox_unread_and_thread_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="messagelabel",
            name="agent",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="directory.agent",
            ),
        ),
        migrations.AddField(
            model_name="messagelabel",
            name="received_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="messagelabel",
            name="archived",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="messagelabel",
            name="agent",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="directory.agent",
            ),
        ),
        migrations.AlterField(
            model_name="messagelabel",
            name="received_at",
            field=models.DateTimeField(),
        ),
        migrations.AddIndex(
            model_name="messagelabel",
            index=models.Index(
                condition=models.Q(("archived", False)),
                fields=["agent", "name", "received_at", "message"],
                name="mail_label_agent_name_visible",
            ),
        ),
        migrations.AddIndex(
            model_name="messagelabel",
            index=models.Index(
                fields=["agent", "name", "received_at", "message"], name="mail_label_agent_name_received"
            ),
        ),
    ]

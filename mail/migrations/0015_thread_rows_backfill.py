"""The Thread row of every existing conversation (GET /v1/threads), summed from its messages
by the same code that keeps the rows current."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from mail.threads import threads_backfill


def backfill(apps: Any, schema_editor: Any) -> None:
    threads_backfill(
        message_model=apps.get_model("mail", "Message"),
        label_model=apps.get_model("mail", "MessageLabel"),
        thread_model=apps.get_model("mail", "Thread"),
    )


class Migration(migrations.Migration):
    dependencies = [("mail", "0014_thread_rows")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]

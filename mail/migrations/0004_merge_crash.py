"""Merge of the scale branch's 0002 with main's chain, only so branch `crash` (which merged
`scale`) migrates. If the lead merges scale into main with its own merge migration, drop this."""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("mail", "0002_scale"), ("mail", "0003_admin_console")]
    operations: list[migrations.operation.Operation] = []

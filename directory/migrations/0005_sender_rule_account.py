"""Sender rules belong to an account.

Agent rules take their agent's account. A rule without an agent was "global" (every
account) and could be made by any operator; who made it was never recorded (no creator
column, and blocking globally emitted no event), so it cannot be handed back to an account:
it stays global, now owned by staff, who review it in the admin (Directory > Sender rules,
scope "global") and delete it or re-create it for the right account.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def agent_rules_take_their_account(apps, schema_editor):
    Agent = apps.get_model("directory", "Agent")
    SenderRule = apps.get_model("directory", "SenderRule")
    SenderRule.objects.filter(agent__isnull=False).update(
        account_id=Subquery(Agent.objects.filter(pk=OuterRef("agent_id")).values("account_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("directory", "0004_fewer_indexes_per_insert"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="senderrule",
            name="directory_senderrule_global_pattern",
        ),
        migrations.AddField(
            model_name="senderrule",
            name="account",
            field=models.ForeignKey(
                blank=True,
                help_text="empty: a global rule, for every account (staff only)",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="sender_rules",
                to="directory.account",
            ),
        ),
        migrations.AlterField(
            model_name="senderrule",
            name="agent",
            field=models.ForeignKey(
                blank=True,
                help_text="empty: the rule covers every agent of the account",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="sender_rules",
                to="directory.agent",
            ),
        ),
        migrations.RunPython(agent_rules_take_their_account, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="senderrule",
            constraint=models.CheckConstraint(
                condition=models.Q(("agent__isnull", True), ("account__isnull", False), _connector="OR"),
                name="directory_senderrule_agent_has_account",
            ),
        ),
        migrations.AddConstraint(
            model_name="senderrule",
            constraint=models.UniqueConstraint(
                condition=models.Q(("agent__isnull", True)),
                fields=("account", "pattern"),
                name="directory_senderrule_account_pattern",
            ),
        ),
        migrations.AddConstraint(
            model_name="senderrule",
            constraint=models.UniqueConstraint(
                condition=models.Q(("account__isnull", True)),
                fields=("pattern",),
                name="directory_senderrule_global_pattern",
            ),
        ),
    ]

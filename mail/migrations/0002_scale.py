# Issue 11 (scale): the index behind the thread lookup every ingest runs.
#
# mail/threads.py asks "did a reply naming this Message-ID arrive first?" with
# Message.objects.for_agent(agent).filter(in_reply_to=...) — no index served it, so each
# ingest scanned the whole mailbox (bench/api.py: 12 ms at 20k messages, linear in size).
# Raw SQL because mail/models.py is being changed on other branches right now: when
# merging, the lead may move it to Message.Meta.indexes as
#   models.Index(fields=["agent", "in_reply_to"], name="mail_message_agent_inreplyto")
# and turn this into SeparateDatabaseAndState(state_operations=[AddIndex(...)]).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("mail", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS mail_message_agent_inreplyto ON mail_message (agent_id, in_reply_to)",
            "DROP INDEX IF EXISTS mail_message_agent_inreplyto",
        ),
        # GET /v1/inbox?is_read=false and /v1/inbox/unread-count filter in_inbox() (direction,
        # disposition) as well; mail_message_agent_unread's predicate lacks them, so every
        # unread row cost a heap fetch. With them in the predicate the count is index-only.
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS mail_message_agent_inbox_unread ON mail_message (agent_id, received_at, id) "
            "WHERE is_read = false AND archived = false AND direction = 'inbound' AND disposition = 'inbox'",
            "DROP INDEX IF EXISTS mail_message_agent_inbox_unread",
        ),
    ]

"""Finer statistics on the two columns q searches (PostgreSQL only), so that the planner
estimates how many messages a term matches, which is what decides its plan.

PostgreSQL reads a page of a search in one of two ways: it walks the mailbox in listing
order (mail_message_agent_inbox) and tests each row until the page is full, which costs
the number of rows up to the page (1 / the term's frequency), or it asks the term's index
(pg_trgm on search_upper, the GIN index on body_search) for every match and sorts them,
which costs the number of matches. Which is cheaper depends only on that frequency, and
the planner knows it only from the column's statistics:

- ``search_upper LIKE '%TERM%'``: the share of the column's histogram that matches. At the
  default target (100) the histogram holds 101 rows, so a term in 0.3 % of the mailbox
  matches none of them most of the time and is estimated at the 0.01 % floor: the planner
  then reads every match from the trigram index, whose common trigrams (``thanks
  tomorrow``) are each in a third of the table (173 ms of SQL at 1M, against 15 for the walk).
  At SEARCH_UPPER_TARGET the histogram holds a row per 300 or so of a 1M table.
- ``body_search @@ query``: a word in the most common elements list gets its frequency;
  any other word is estimated at half the least frequent word of the list, at most 0.5 %.
  The list holds 10 words per unit of target: at 100, a thousand words, the rarest of them
  in ~1 % of real mail, so a word found in one message is estimated in 0.5 % of the
  mailbox, and the planner walks the mailbox probing each message's content for it (2 s at
  1M). At BODY_SEARCH_TARGET the list holds ten times more words, and on text with a long
  tail of words an unlisted word is estimated below the share where the walk pays (a text
  with no word between one message and a few per cent, as bench/api.py's seed, still walks).

Each target also sets ANALYZE's sample (300 rows per unit of the largest target of the
table) and the planning cost of a search: each pattern is matched against every row of
the histogram (1-10 ms a pattern at 3,000 on the shared 2-core VM; docs/decisions/0041). The migration analyzes the two columns so that the estimates hold at once,
not after autovacuum's next ANALYZE: on a large installation that reads the sample of each
table (seconds per million rows).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

SEARCH_UPPER_TARGET = 3000
BODY_SEARCH_TARGET = 1000
_COLUMNS = (
    ("mail_message", "search_upper", SEARCH_UPPER_TARGET),
    ("mail_messagecontent", "body_search", BODY_SEARCH_TARGET),
)


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, target in _COLUMNS:
        schema_editor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS {target}')
        schema_editor.execute(f'ANALYZE "{table}" ("{column}")')


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, _ in _COLUMNS:
        schema_editor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS -1')


class Migration(migrations.Migration):
    dependencies = [("mail", "0019_label_message_no_own_index")]

    operations = [migrations.RunPython(forwards, backwards)]
